"""An upscale job's script: the engine's upscale_file on the recorded source, with its recorded size and upscaler."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.codegen.bundle import Bundle
from sdxl_nb.codegen.literal import literal
from sdxl_nb.codegen.model_files import not_writable
from sdxl_nb.codegen.template import header, import_block

IMPORTS = ("import sys", "from pathlib import Path", "from types import SimpleNamespace")
RUN = '''

def main(out_dir="."):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE_NAME
    upscale_file(SOURCE, SETTINGS).save(path)
    print(path)


if __name__ == "__main__":
    main(*sys.argv[1:2])
'''


def upscale_script(record: dict, folder: str | Path) -> str:
    """The script of a Lanczos upscale; one with an upscaler model is refused (its weights go through sdxl_nb's
    weights checker before spandrel reads them)."""
    from sdxl_nb.audit.replay_files import ReplayError
    from sdxl_nb.config.trusted_folders import NotTrusted
    from sdxl_nb.jobs.upscale import recorded_upscale

    try:
        source, settings = recorded_upscale(record, folder)
    except (ReplayError, NotTrusted, ValueError) as exc:
        raise not_writable(str(exc)) from None
    if settings.upscaler.kind != "pixel":
        raise not_writable(f"upscaler {settings.upscaler.name!r} is a model file, read through sdxl_nb's weights "
                           "checker before spandrel")
    bundle = Bundle(leave_out=("sdxl_nb.backends.local.weights:load_state_dict",
                               "sdxl_nb.backends.local.weights:WeightsRefused"))
    bundle.add("sdxl_nb.jobs.upscale:upscale_file")
    (entry,) = [e for e in record["images"] if isinstance(e, dict)][:1]
    values = {"JOB_ID": record.get("job_id"), "SOURCE": str(Path(source.path).resolve()), "SETTINGS": settings,
              "FILE_NAME": Path(entry["path"]).name}
    settings_text = "\n".join(f"{name} = {literal(value)}" for name, value in values.items())
    imports = import_block(IMPORTS + tuple(bundle.imports()))
    text = header(record.get("job_id"), "upscale", settings.upscaler.name, imports)
    return f"{text}\n\n\n{bundle.text()}\n\n\n# ---- the job, as its record says ----\n{settings_text}\n{RUN}"
