"""The jobs.log record (schema v1) and the PNG metadata derived from it; no torch."""

from __future__ import annotations

import uuid
from datetime import datetime

from PIL.PngImagePlugin import PngInfo

import sdxl_nb
from sdxl_nb.record.control_params import control_fields
from sdxl_nb.record.ip_adapter import ip_adapter_fields, ip_adapter_record
from sdxl_nb.record.joblog import SCHEMA_VERSION, encode_record
from sdxl_nb.record.metadata import a1111_sampler, build_parameters
from sdxl_nb.request.inpaint import a1111_fields as inpaint_a1111_fields
from sdxl_nb.request.prompt_syntax import lora_tag, lora_tags
from sdxl_nb.request.resolve import InputImage, ResolvedRequest

# Fields only known once the job is over; an image's own PNG chunk is written before that.
_JOB_ONLY_FIELDS = ("images", "timings", "finished_at", "status", "error", "peak_memory_bytes",
                    "frames", "grid", "animations")


# Keys the lab writes itself; fields merged into a record (api.generate(extra=...)) may not reuse them.
RESERVED_KEYS = frozenset({
    "schema", "job_id", "mode", "status", "error", "started_at", "finished_at", "model", "device", "scheduler", "style",
    "prompt", "negative_prompt", "styled_prompt", "effective_negative_prompt", "steps", "cfg", "width", "height",
    "batch", "chunk_size", "seed", "seeds", "strength", "init_image", "mask_image", "images", "timings",
    "peak_memory_bytes", "events", "warnings", "notes", "env", "animation", "frames", "grid", "animations",
    "loras", "embeddings", "conditioning", "refiner", "hires", "ip_adapter", "ip_images", "controlnets",
    "control_maps", "inpaint", "schedule_type"})


def check_extra(extra: dict | None) -> dict:
    """Extra top-level record fields (a sweep cell, a batch scenario, a backend...); checked before any work."""
    from sdxl_nb.errors import InputError

    if extra is None:
        return {}
    if not isinstance(extra, dict) or not all(isinstance(key, str) for key in extra):
        raise InputError(f"extra must be a dict with text keys, got {type(extra).__name__}")
    clash = sorted(RESERVED_KEYS & set(extra))
    if clash:
        raise InputError(f"extra field {clash[0]!r} is a record field the lab writes itself; use another name")
    return dict(extra)


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def new_job_id() -> str:
    return uuid.uuid4().hex


def _input_image(image: InputImage | None) -> dict | None:
    return None if image is None else {"path": image.path, "sha256": image.sha256, "size": list(image.size)}


def base_record(r: ResolvedRequest, *, job_id: str, started_at: str, model: dict, device: dict, env: dict,
                scheduler: dict | None = None) -> dict:
    """Everything known before the run; `finish_record` adds the outcome."""
    record = _base_record(r, job_id=job_id, started_at=started_at, model=model, device=device, env=env,
                          scheduler=scheduler)
    if r.controlnets:  # only then: records of jobs without ControlNets keep their shape
        record["controlnets"] = [unit.record() for unit in r.controlnets]
        record["control_maps"] = []  # each unit's preprocessed map, saved after the images
    return record


def _base_record(r: ResolvedRequest, *, job_id: str, started_at: str, model: dict, device: dict, env: dict,
                 scheduler: dict | None = None) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "job_id": job_id,
        "mode": r.mode,
        "status": None,
        "error": None,
        "started_at": started_at,
        "finished_at": None,
        "model": model,
        "device": device,
        "scheduler": scheduler or {"name": r.scheduler.name, "class": r.scheduler.cls, "config": None},
        "schedule_type": r.schedule_type,  # A1111's label; the scheduler config above already applies it
        "style": {"name": r.style.name, "hash": r.style.content_hash},
        "prompt": r.prompt,
        "negative_prompt": r.negative_prompt,
        "styled_prompt": r.styled_prompt,
        "effective_negative_prompt": r.effective_negative_prompt,
        "steps": r.steps,
        "cfg": r.cfg,
        "width": r.width,
        "height": r.height,
        "batch": r.batch,
        "seed": r.seed,
        "seeds": list(r.seeds),
        "strength": r.strength,
        "init_image": _input_image(r.init_image),
        "mask_image": _input_image(r.mask_image),
        "loras": [lora.record() for lora in r.loras],
        "embeddings": [embedding.record() for embedding in r.embeddings],
        "refiner": None,  # {id, revision, switch}: the job pipeline fills it in (config.refiners.refiner_record)
        **ip_adapter_record(r),
        "images": [],
        "timings": {},
        "peak_memory_bytes": None,
        "events": [],
        "warnings": [],
        "notes": list(r.notes),
        "env": env,
        # The hires fix's second pass; width and height above stay the first pass's size (A1111's `Size`).
        **({"hires": r.hires.record((r.width, r.height))} if r.hires else {}),
        # A1111's inpaint settings (request/inpaint.py); records without it ran without the paste-back
        **({"inpaint": r.inpaint.record()} if r.inpaint is not None else {}),
    }


def image_chunk(record: dict, index: int, seed: int, path: str, image: dict | None = None) -> dict:
    """That image's full record for its PNG: the job's settings plus which image it is (and `image` extras)."""
    chunk = {key: value for key, value in record.items() if key not in _JOB_ONLY_FIELDS}
    chunk["image"] = {"index": index, "seed": seed, "path": path, **(image or {})}
    return chunk


def png_info(record: dict, index: int, seed: int, path: str, *, prompt: str | None = None,
             extra_fields: dict | None = None, image: dict | None = None) -> PngInfo:
    """A1111 `parameters` (that image's seed) plus the `sdxl_nb` JSON chunk.

    For images whose prompt differs from the job's (animation frames): `prompt` is that image's styled
    prompt, `extra_fields` more A1111 `Key: value` pairs, `image` more keys for the chunk's "image".
    """
    scheduler = record["scheduler"]
    sampler, schedule = a1111_sampler(scheduler["class"] or "", scheduler.get("config") or {},
                                      record.get("schedule_type"))
    fields = {
        "Steps": record["steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": f"{record['cfg']:g}",
        "Seed": seed,
        "Size": f"{record['width']}x{record['height']}",
        # A1111's checkpoint hash (first 10 hex digits of the file's sha256), where the model is one file.
        "Model hash": (record["model"].get("sha256") or "")[:10] or None,
        "Model": record["model"]["id"].rsplit("/", 1)[-1],
        "Denoising strength": None if record["strength"] is None else f"{record['strength']:g}",
        "Style": record["style"]["name"],
        **refiner_fields(record),
        **hires_fields(record),
        **network_fields(record),
        **ip_adapter_fields(record),
        **control_fields(record),
        **inpaint_a1111_fields(record),
        **(extra_fields or {}),
        "Version": f"sdxl_nb {sdxl_nb.__version__}",
    }
    text = build_parameters(with_lora_tags(record["styled_prompt"] if prompt is None else prompt, record),
                            record["effective_negative_prompt"], fields)
    info = PngInfo()
    info.add_text("parameters", text)
    info.add_itxt("sdxl_nb", encode_record(image_chunk(record, index, seed, path, image)).decode("utf-8").rstrip("\n"))
    return info


def hires_fields(record: dict) -> dict:
    """A1111's hires fix settings; `Denoising strength` is the second pass's (a txt2img job has no other)."""
    hires = record.get("hires")
    if not isinstance(hires, dict):
        return {}
    # A1111's calculate_target_resolution: "Hires resize: WxH" (as given, 0 keeps the ratio) replaces "Hires upscale".
    resize = hires.get("resize")
    size = {"Hires resize": f"{resize[0]}x{resize[1]}"} if resize else {"Hires upscale": f"{hires['scale']:g}"}
    return {"Denoising strength": f"{hires['denoise']:g}", **size,
            "Hires steps": hires["steps"], "Hires upscaler": hires["upscaler"]["name"]}


def with_lora_tags(prompt: str, record: dict) -> str:
    """The prompt as A1111 would show it: every LoRA of the job as a <lora:NAME:WEIGHT> tag (the ones given with
    --lora or loras= are appended; the prompt's own tags stay where they are)."""
    tagged = {tag.name for tag in lora_tags(prompt)}
    extra = [lora_tag(lora["name"], lora["weight"]) for lora in record.get("loras") or [] if lora["name"] not in tagged]
    return " ".join([prompt, *extra]) if extra else prompt


def refiner_fields(record: dict) -> dict:
    """A1111's `Refiner: NAME [HASH]` (the bare name where no file hash is known) and `Refiner switch at`; none at
    switch 1, where the refiner never takes over (A1111 writes them only when it switches)."""
    refiner = record.get("refiner")
    if not refiner or refiner["switch"] >= 1:
        return {}
    name = refiner["id"].rsplit("/", 1)[-1]
    short = refiner.get("hash")  # a single-file checkpoint's first 10 hex digits of sha256, where known
    # A1111 (apply_refiner) adds `Refiner switch by sampling steps: True` when it counts steps; a hires job's refiner
    # runs in the second pass, its default hires_fix_refiner_pass, which it leaves out of the text (no `Hires refiner`).
    by_steps = {"Refiner switch by sampling steps": "True"} if refiner.get("switch_by") == "steps" else {}
    return {"Refiner": f"{name} [{short[:10]}]" if short else name, "Refiner switch at": str(float(refiner["switch"])),
            **by_steps}


def network_fields(record: dict) -> dict:
    """A1111's `Lora hashes` and `TI hashes` settings (names without ':' and ',', A1111's short hashes)."""
    def listing(entries, hash_of) -> str | None:
        pairs = [f"{entry['name'].replace(':', '').replace(',', '')}: {hash_of(entry)}" for entry in entries]
        return ", ".join(pairs) or None

    return {"Lora hashes": listing(record.get("loras") or [], lambda e: e.get("a1111_hash") or e["sha256"][:12]),
            "TI hashes": listing(record.get("embeddings") or [], lambda e: e["sha256"][:12])}
