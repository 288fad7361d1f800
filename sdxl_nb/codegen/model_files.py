"""The model files a record names, as absolute paths a plain script can load (the record's revision, or none)."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.errors import InputError


class NotWritable(InputError):
    """A job that cannot be written as plain code (yet); the message is one line saying why."""


def not_writable(why: str) -> NotWritable:
    return NotWritable(f"this job cannot be written as plain code yet: {why}")


def checkpoint_file(model: dict) -> tuple[Path, Path] | None:
    """(file, config folder of its architecture) of a single-file checkpoint the record names, which must still hold
    the recorded sha256; None for a model folder."""
    if model.get("source") != "checkpoint":
        return None
    from sdxl_nb.audit.replay_request import check_recorded_checkpoint
    from sdxl_nb.backends.local.checkpoint_load import config_for
    from sdxl_nb.config.trusted_folders import NotTrusted
    from sdxl_nb.record.store import sha256_file

    try:
        check_recorded_checkpoint(model)  # loaded from the recorded path only inside the user's checkpoint folders
    except NotTrusted as exc:
        raise not_writable(str(exc)) from None
    path = Path(str(model.get("path")))
    if not path.is_file():
        raise not_writable(f"checkpoint {path} is gone")
    if sha256_file(path) != model.get("sha256"):
        raise not_writable(f"checkpoint {path} changed since the job (its sha256 is not the recorded one)")
    return path.resolve(), Path(config_for(path)).resolve()


def model_folder(model: dict) -> Path:
    """The diffusers folder of the record's model at its recorded revision: an embedded model's build folder in
    the sdxl_nb cache (its content hash must still be the revision), or the HF cache snapshot of that commit; a
    checkpoint's architecture folder (its configs, tokenizers and scheduler)."""
    model_id, revision, source = model.get("id"), model.get("revision"), model.get("source")
    if source == "checkpoint":
        return checkpoint_file(model)[1]
    if not isinstance(model_id, str) or not isinstance(revision, str):
        raise not_writable("the record names no model id and revision")
    if source == "embedded":
        from sdxl_nb.config.embedded_models import embedded_folder
        from sdxl_nb.config.tiny import content_revision

        folder = embedded_folder(model_id)
        if content_revision(folder) != revision:
            raise not_writable(f"the embedded model {model_id!r} here is revision {content_revision(folder)}, "
                               f"not the recorded {revision}")
        return folder.resolve()
    return snapshot_folder(model_id, revision)


def snapshot_folder(repo_id: str, revision: str) -> Path:
    """The HF cache snapshot of a repo at a commit; refused when this cache does not hold that commit."""
    from sdxl_nb.config.registry import _repo_folder

    folder = _repo_folder(repo_id) / "snapshots" / revision
    if not folder.is_dir():
        raise not_writable(f"model {repo_id!r} revision {revision} is not in the local Hugging Face cache "
                           f"({folder.parent})")
    return folder.resolve()


def refiner_files(record: dict, base_folder: Path) -> dict | None:
    """The refiner a record names: {id, folder, shared}, `shared` being the base's modules it runs with (as the
    engine decides: refiner.folder_shares); None without one, or at switch 1 (the refiner never ran)."""
    entry = record.get("refiner")
    if not entry or entry.get("switch", 1) >= 1:
        return None
    from sdxl_nb.backends.local.loading import DTYPES
    from sdxl_nb.backends.local.refiner import folder_shares
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    if record["model"].get("source") == "checkpoint":
        raise not_writable("a refiner beside a single-file checkpoint shares modules the engine compares once loaded")
    info = find_model(entry["id"], load_presets())
    revision = entry.get("revision")
    if info.source == "checkpoint":
        raise not_writable(f"refiner {info.id!r} is a single-file checkpoint (its key conversion is sdxl_nb's own)")
    if info.source == "embedded":
        from sdxl_nb.config.refiners import embedded_refiner_folder
        from sdxl_nb.config.tiny import content_revision

        folder = Path(embedded_refiner_folder(info.id)).resolve()
        if content_revision(folder) != revision:
            raise not_writable(f"the embedded refiner {info.id!r} here is revision {content_revision(folder)}, not "
                               f"the recorded {revision}")
    else:
        folder = snapshot_folder(info.id, str(revision))
    model = record["model"]
    base = type("Base", (), {"path": str(base_folder), "vae": model.get("vae")})
    dtype = DTYPES[str(model.get("dtype") or "float32")]
    return {"id": info.id, "folder": str(folder), "shared": folder_shares(base, folder, dtype)}
