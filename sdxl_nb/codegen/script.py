"""A job record -> a standalone script (diffusers, torch, transformers, PIL; no sdxl_nb) that re-creates its images."""

# The script carries the engine's own definitions (bundle.py), the record's values as literals, and a short run loop
# (template.py) that calls them in the order of the engine's (backends/local/run_loop.py).

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from sdxl_nb.codegen.bundle import Bundle, NotEmbeddable
from sdxl_nb.codegen.literal import literal
from sdxl_nb.codegen.model_files import checkpoint_file, model_folder, not_writable, refiner_files, snapshot_folder
from sdxl_nb.codegen.template import IMPORTS, QUIET, RUN, header, import_block
from sdxl_nb.record.secrets import mask

LOCAL = "sdxl_nb.backends.local"
# The engine's definitions every script runs.
ENGINE_PARTS = (f"{LOCAL}.calls:CallArguments", f"{LOCAL}.core:mode_pipeline", f"{LOCAL}.core:fresh_scheduler",
                f"{LOCAL}.core:seed_brownian_noise", f"{LOCAL}.decode:decode_guarded", "sdxl_nb.backends.base:ImageSpec",
                f"{LOCAL}.loading:_variant", f"{LOCAL}.controlnet:controlnet_pipeline")
REFINER_PARTS = (f"{LOCAL}.refiner:RefinerStage", f"{LOCAL}.refiner:LoadedRefiner")
SCRIPTED_PREPROCESSORS = ("none", "canny")  # the others run annotator models through sdxl_nb's loaders
# Options that change the computation (compiled graphs, fused or fp8 layers, tiled decodes): not written as code.
CHANGING_OPTIONS = ("channels_last", "fuse_qkv", "compile", "cuda_graphs", "fp8", "vae_slicing", "vae_tiling",
                    "cpu_offload")
# The request fields the engine's functions read (CallArguments, InpaintInputs, HiresPass).
REQUEST_FIELDS = ("mode", "scheduler", "styled_prompt", "effective_negative_prompt", "steps", "cfg", "width",
                  "height", "strength", "init_image", "mask_image", "inpaint", "ip_adapter", "controlnets", "hires",
                  "refiner", "refiner_switch", "refiner_switch_by")


def refusal(record: dict) -> str | None:
    """Why this record cannot be written as plain code (one line), or None."""
    mode = record.get("mode")
    backend = record.get("backend") if isinstance(record.get("backend"), dict) else {}
    if backend.get("name") not in (None, "local"):
        return f"it was made on the {backend.get('name')} backend, whose nodes are not diffusers calls"
    if mode not in ("txt2img", "img2img", "inpaint", "animate", "upscale"):
        return f"{mode} jobs are not written as code (txt2img, img2img, inpaint, animate and upscale jobs are)"
    if not [entry for entry in record.get("images") or [] if isinstance(entry, dict)]:
        return "the job saved no images"
    for unit in record.get("controlnets") or []:
        preprocessor = unit.get("preprocessor") if isinstance(unit, dict) else None
        if preprocessor not in SCRIPTED_PREPROCESSORS:
            return (f"the ControlNet preprocessor {preprocessor!r} runs an annotator model "
                    f"(written as code: {', '.join(SCRIPTED_PREPROCESSORS)})")
    tuned = record.get("auto_tune") if isinstance(record.get("auto_tune"), dict) else {}
    if any(tuned.get(name) for name in ("vae_slicing", "vae_tiling", "cpu_offload")):
        return "the job ran out of memory and auto-tuned to VAE slicing, tiling or CPU offload"
    options = ((record.get("env") or {}).get("options") or {})
    changing = [name for name in CHANGING_OPTIONS if options.get(name)]
    if changing:
        return f"engine options {', '.join(changing)} change the computation"
    return None


def run_plan(record: dict, folder: str | Path):
    """The RunPlan the engine re-runs the record with: a generate job's recorded images and calls, or an animation's
    frames (their seeds, prompts, ends and t)."""
    from sdxl_nb.audit.replay_request import ReplayError, request_from_record

    try:
        if record.get("mode") == "animate":
            from sdxl_nb.jobs.animate.rerun import plan_from_record

            plan = plan_from_record(record, folder)
        else:
            from sdxl_nb.backends.local.replay import replay_plan

            plan = replay_plan(record, request_from_record(record, folder))
    except (ReplayError, ValueError) as exc:
        raise not_writable(str(exc)) from None
    if plan.calls is not None:
        return plan
    size = plan.chunk_size or len(plan.images)
    return replace(plan, calls=tuple(tuple(range(start, min(start + size, len(plan.images))))
                                     for start in range(0, len(plan.images), size)))


def left_out(r, refiner: dict | None) -> tuple[str, ...]:
    """Engine names this job never reaches (stubs in the script): weight files the script loads with its own
    diffusers calls, kinds refused above, and the parts of modes the job does not use."""
    names = [f"{LOCAL}.weights:load_state_dict", f"{LOCAL}.weights:WeightsRefused",
             f"{LOCAL}.weights:check_weights_folder", f"{LOCAL}.controlnet_file:load_controlnet_file",
             "sdxl_nb.request.annotators:annotate"]
    if not r.controlnets:
        names += [f"{LOCAL}.controlnet:control_arguments", "sdxl_nb.request.control_maps:unit_map"]
    if r.mode != "inpaint" or r.inpaint is None:
        names.append(f"{LOCAL}.inpaint_area:InpaintInputs")
    if refiner is None:
        names += [f"{LOCAL}.refiner_split:denoising_point", f"{LOCAL}.refiner_split:switch_by"]
    return tuple(names)


def job_script(record: dict, folder: str | Path) -> str:
    """The script's text; NotWritable (one line) when the record cannot be written as plain code."""
    why = refusal(record)
    if why:
        raise not_writable(why)
    if record.get("mode") == "upscale":
        from sdxl_nb.codegen.upscale_script import upscale_script

        return checked(upscale_script(record, folder))
    plan = run_plan(record, folder)
    r = plan.request
    if r.hires is not None and r.hires.upscaler.kind == "model":
        raise not_writable(f"the hires upscaler {r.hires.upscaler.name!r} is a model file (spandrel), not diffusers")
    if any(Path(unit.model_path).is_file() for unit in r.controlnets):
        raise not_writable("a single-file ControlNet's key conversion is sdxl_nb's own")
    if any(Path(e.path).suffix.lower() != ".safetensors" for e in r.embeddings):
        raise not_writable("an embedding that is no .safetensors file is read by sdxl_nb's weights checker")
    device = (record.get("device") or {}).get("type")
    if device not in ("cpu", "cuda", "mps"):
        raise not_writable(f"the record's device type {device!r} is not cpu, cuda or mps")
    model = record["model"]
    folder_path = model_folder(model)
    vae = model.get("vae")
    vae_folder = snapshot_folder(vae["id"], vae["revision"]) if isinstance(vae, dict) else None
    refiner = refiner_files(record, folder_path)
    checkpoint = checkpoint_file(model)
    parts = ENGINE_PARTS + ((f"{LOCAL}.hires:HiresPass",) if r.hires else ()) + (REFINER_PARTS if refiner else ()) \
        + ((f"{LOCAL}.checkpoint_load:checkpoint_pipeline",) if checkpoint else ())
    bundle = Bundle(leave_out=left_out(r, refiner))
    try:
        for part in parts:
            bundle.add(part)
        request = ",\n    ".join(f"{name}={literal(getattr(r, name))}" for name in REQUEST_FIELDS)
    except NotEmbeddable as exc:
        raise not_writable(f"the engine's code it needs is not self-contained ({exc})") from None
    saved = record.get("frames") if record.get("mode") == "animate" else record.get("images")
    values = {
        "JOB_ID": record.get("job_id"),
        "MODEL_FOLDER": str(folder_path),
        "CHECKPOINT": None if checkpoint is None else str(checkpoint[0]),  # a single file, configs from MODEL_FOLDER
        "VAE_FOLDER": None if vae_folder is None else str(vae_folder),
        "DTYPE": str(model.get("dtype") or "float32"),
        "DEVICE": device,
        "CPU_THREADS": (record.get("env") or {}).get("cpu_threads"),
        "VERSIONS": {name: (record.get("env") or {}).get(name) for name in ("torch", "diffusers", "transformers")},
        "REFINER": refiner,
        "LORAS": [(lora.path, lora.sha256, lora.weight) for lora in r.loras],
        "EMBEDDINGS": [(e.name, e.path, e.sha256) for e in r.embeddings],
        "PLAIN": plan.plain,  # one prompt and plain seed noise for every image (else per-image pipelines)
        "TEXTS": plan.texts(),
        "CALLS": [[{f.name: getattr(plan.images[p], f.name) for f in fields(plan.images[p])} for p in call]
                  for call in plan.calls],
        "FILE_NAMES": {e["index"]: Path(e["path"]).name for e in saved or [] if isinstance(e, dict) and "path" in e},
    }
    settings = "\n".join(f"{name} = {literal(value)}" for name, value in values.items())
    text = header(record.get("job_id"), record.get("mode"), model.get("id"),
                  import_block(IMPORTS + tuple(bundle.imports()))) + QUIET
    return checked(f"{text}\n\n\n{bundle.text()}\n\n\n# ---- the job, as its record says ----\n{settings}\n"
                   f"REQUEST = SimpleNamespace(\n    {request},\n)\n\n{RUN}")


def checked(text: str) -> str:
    """The script, unless it would hold the value of a secret of this environment (record/secrets.py)."""
    if mask(text) != text:
        raise not_writable("its record holds a value of a secret of this environment")
    return text
