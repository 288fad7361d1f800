"""A job record -> the exact request that ran (recorded prompts, scheduler config, seeds, verified inputs)."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.audit.replay_files import (
    FOUND,
    RECORD_SHOWN,
    ReplayError,
    entries,
    recorded_input,
    trusted,
)
from sdxl_nb.audit.replay_guides import recorded_controlnets, recorded_ip_adapter
from sdxl_nb.config.limits import MAX_BATCH, MAX_SIZE, MAX_STEPS, MIN_SIZE
from sdxl_nb.config.presets import ModelPreset, Presets, SchedulerPreset, StylePreset, load_presets
from sdxl_nb.config.trusted_folders import (
    NotTrusted,
    check_model_file,
    in_model_folders,
)
from sdxl_nb.errors import InputError
from sdxl_nb.record.config_codec import decode_config
from sdxl_nb.record.png_record import shown
from sdxl_nb.record.store import sha256_file
from sdxl_nb.request.resolve import ResolvedRequest

REPLAYABLE_MODES = ("txt2img", "img2img", "inpaint")


# A record naming a model file outside the user's model folders, or an image outside the audited folder, raises
# NotTrusted (config.trusted_folders): that job is "not re-run", nothing of it is opened, the audit goes on.
__all__ = ["NotTrusted", "ReplayError", "request_from_record"]
def scheduler_kwargs(config: dict | None) -> dict:
    """The recorded scheduler config as from_config keywords (infinities were stored as text)."""
    if config is not None and not isinstance(config, dict):
        raise ReplayError(f"the record's scheduler config is not a mapping (got {type(config).__name__})")
    return decode_config(dict(config or {}))


def _field(record: dict, key: str, kind: type | tuple[type, ...]):
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ReplayError(f"the record has no usable {key!r} (got {shown(value, RECORD_SHOWN)})")
    if isinstance(value, float) and value != value:
        raise ReplayError(f"the record's {key!r} is not a number")
    return value


def _within(record: dict, key: str, low: int, high: int) -> int:
    """A recorded whole number inside the range a request accepts (a hostile record asks for no huge run)."""
    value = _field(record, key, int)
    if not low <= value <= high:
        raise ReplayError(f"the record's {key} {shown(value, RECORD_SHOWN)} is out of range; accepted: {low} to {high}")
    return value


def request_from_record(record: dict, folder: str | Path, presets: Presets | None = None) -> ResolvedRequest:
    """Rebuild what ran from the record alone: the recorded styled prompt and effective negative
    (whatever the style preset says today), scheduler class and full config, size, steps, cfg,
    strength and per-image seeds; init/mask images must still match their recorded sha256."""
    folder = Path(folder)
    mode = record.get("mode")
    if mode not in REPLAYABLE_MODES:
        raise ReplayError(f"mode {mode!r} is not re-run by the engine; accepted: {', '.join(REPLAYABLE_MODES)}")
    presets = presets or load_presets()
    model = record.get("model")
    model_id = model.get("id") if isinstance(model, dict) else model
    if not isinstance(model_id, str):
        raise ReplayError("the record names no model")
    scheduler = record.get("scheduler")
    if not isinstance(scheduler, dict) or not isinstance(scheduler.get("class"), str):
        raise ReplayError("the record has no scheduler class")
    steps, cfg = _within(record, "steps", 1, MAX_STEPS), float(_field(record, "cfg", (int, float)))
    width, height = _within(record, "width", MIN_SIZE, MAX_SIZE), _within(record, "height", MIN_SIZE, MAX_SIZE)
    batch = _within(record, "batch", 1, MAX_BATCH)
    seeds = record.get("seeds")
    if not (isinstance(seeds, list) and len(seeds) == batch and all(isinstance(s, int) for s in seeds)):
        seed = _field(record, "seed", int)
        seeds = [seed + i for i in range(batch)]  # the rule every schema has used: image i used seed + i
    init, mask = recorded_input(record, "init_image", folder), recorded_input(record, "mask_image", folder)
    if mode != "txt2img" and init is None:
        raise ReplayError(f"a {mode} record without an init_image")
    if mode == "inpaint" and mask is None:
        raise ReplayError("an inpaint record without a mask_image")
    strength = None if mode == "txt2img" else float(_field(record, "strength", (int, float)))
    kwargs = scheduler_kwargs(scheduler.get("config"))
    # A ComfyUI job recorded the sampler the server ran; a re-run there asks for the same one.
    remote = kwargs.pop("comfy", None)
    comfy = (remote["sampler_name"], remote["scheduler"]) if isinstance(remote, dict) else None
    style = record.get("style") if isinstance(record.get("style"), dict) else {}
    style_name = style.get("name") if isinstance(style.get("name"), str) else "(recorded)"
    # Carried for its name only: the recorded styled prompt and negative are what run.
    style_preset = presets.styles.get(style_name) or StylePreset(name=style_name, prompt="{prompt}")
    model_preset = presets.models.get(model_id) or ModelPreset(
        id=model_id, description="as recorded", steps=steps, cfg=cfg, heavy=True, turbo=False)
    found: list[str] = []
    token = FOUND.set(found)
    try:
        networks = dict(loras=recorded_loras(record), embeddings=recorded_embeddings(record),
                        hires=recorded_hires(record), ip_adapter=recorded_ip_adapter(record, folder),
                        controlnets=recorded_controlnets(record, folder))
    finally:
        FOUND.reset(token)
    return ResolvedRequest(
        mode=mode, model=model_preset,
        scheduler=SchedulerPreset(name=str(scheduler.get("name")), cls=scheduler["class"], kwargs=kwargs,
                                  comfy=comfy),
        style=style_preset, prompt=str(record.get("prompt", "")), negative_prompt=str(record.get("negative_prompt", "")),
        styled_prompt=_field(record, "styled_prompt", str),
        effective_negative_prompt=_field(record, "effective_negative_prompt", str),
        steps=steps, cfg=cfg, width=width, height=height, batch=batch, seed=seeds[0], seeds=tuple(seeds),
        strength=strength, init_image=init, mask_image=mask, notes=("re-run from the record", *found),
        inpaint=_recorded_inpaint(record, mode), schedule_type=recorded_schedule_type(record),
        **networks, **recorded_refiner(record, presets))


def _recorded_inpaint(record: dict, mode: str):
    """A1111's inpaint settings the job ran with; an older inpaint record (none) re-runs as it ran, without them."""
    from sdxl_nb.request.inpaint import recorded_inpaint

    if mode != "inpaint":
        return None
    try:
        return recorded_inpaint(record)
    except InputError as exc:
        raise ReplayError(f"the record's inpaint settings cannot run: {exc}") from None


def recorded_schedule_type(record: dict) -> str:
    """The schedule type's A1111 label, for the re-run's record and text only: the recorded scheduler config
    already holds its diffusers options (records before schedule types: Automatic)."""
    from sdxl_nb.config.schedule_types import AUTOMATIC, BY_LABEL

    label = record.get("schedule_type", AUTOMATIC)
    if not isinstance(label, str) or label not in BY_LABEL:
        raise ReplayError(f"the record's schedule_type {label!r} is not one of {', '.join(BY_LABEL)}")
    return label


def recorded_refiner(record: dict, presets: Presets) -> dict:
    """The refiner and switch a job ran with (none in older records); a refiner known to the registry is needed."""
    entry = record.get("refiner")
    if entry is None:
        return {}
    switch = entry.get("switch") if isinstance(entry, dict) else None
    if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)
            and isinstance(switch, (int, float)) and not isinstance(switch, bool) and 0 < switch <= 1):
        raise ReplayError(f"the record's refiner {entry!r} has no id and switch (0 < switch <= 1)")
    from sdxl_nb.config.registry import model_presets

    preset = model_presets(presets).get(entry["id"])
    if preset is None or not preset.refiner:
        raise ReplayError(f"refiner {entry['id']!r} is not installed here; the job cannot be re-run from its record")
    from sdxl_nb.request.refiner_choice import REFINER_SWITCH_BY

    by = entry.get("switch_by", REFINER_SWITCH_BY[0])  # older records: the switch on timesteps, all they ran
    if by not in REFINER_SWITCH_BY:
        raise ReplayError(f"the record's refiner switch_by {by!r} is not one of {', '.join(REFINER_SWITCH_BY)}")
    return {"refiner": preset, "refiner_switch": float(switch), "refiner_switch_by": by}



def check_recorded_checkpoint(model: object) -> None:
    """A checkpoint the record names by path is loaded from there only inside the user's checkpoint folders (or the
    caches): else NotTrusted. One gone from that path is found by id in the registry, which lists only those folders."""
    path = model.get("path") if isinstance(model, dict) else None
    if isinstance(path, str) and path and model.get("source") == "checkpoint" and Path(path).exists():
        check_model_file(path, "checkpoint", f"checkpoint {str(model.get('id'))!r}")


def trusted_upscaler(entry: object) -> object:
    """The record's upscaler entry, after NotTrusted for a model file outside the user's upscaler folders (loading one
    runs its format's code) of which they hold no copy; recorded_upscaler then checks that it holds what the job used."""
    if isinstance(entry, dict) and entry.get("kind") == "model":
        name = entry.get("name")
        what = f"upscaler {name!r}" if isinstance(name, str) else "upscaler"
        path = trusted(entry.get("path"), "upscaler", entry.get("sha256"), what)
        if not in_model_folders(entry.get("path"), "upscaler"):
            return {**entry, "path": str(path)}
    return entry


def recorded_hires(record: dict):
    """The hires pass a job ran (None without one); an upscaler model must still hold what the job used."""
    from sdxl_nb.config.hires import HiresFix, recorded_resize
    from sdxl_nb.config.upscalers import recorded_upscaler

    entry = record.get("hires")
    if entry is None:
        return None
    try:
        if not isinstance(entry, dict):
            raise ValueError(f"the record's hires {entry!r} is not a mapping")
        upscaler = recorded_upscaler(trusted_upscaler(entry.get("upscaler")))
        return HiresFix(scale=float(_field(entry, "scale", (int, float))), steps=_field(entry, "steps", int),
                        denoise=float(_field(entry, "denoise", (int, float))), upscaler=upscaler,
                        width=_field(entry, "width", int), height=_field(entry, "height", int),
                        **recorded_resize(entry))
    except NotTrusted:
        raise
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    except Exception as exc:  # an unknown built-in name (InputError)
        raise ReplayError(f"the record's hires cannot be re-run: {exc}") from None


def _recorded_file(kind: str, entry: object) -> tuple[str, Path, str]:
    """(name, path, sha256) of a recorded LoRA or embedding whose file lies in the user's folders for it and still
    holds what the job used."""
    if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)):
        raise ReplayError(f"the record's {kind} entry {shown(entry, RECORD_SHOWN)} has no name, path and sha256")
    path = trusted(entry["path"], kind.lower(), entry["sha256"], f"{kind} {entry['name']!r}")
    if not path.is_file():
        raise ReplayError(f"{kind} {entry['name']!r} ({path}) is missing; the job cannot be re-run from its record")
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ReplayError(f"{kind} {entry['name']!r} ({path}) changed since the job (sha256 {actual[:12]}..., "
                          f"recorded {entry['sha256'][:12]}...)")
    return entry["name"], path, actual


def recorded_loras(record: dict) -> tuple:
    """The LoRAs a job ran with, each file checked against its recorded sha256 (none in older records)."""
    from sdxl_nb.config.loras import LoraUse

    loras = []
    for entry in entries(record, "loras"):
        name, path, sha = _recorded_file("LoRA", entry)
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ReplayError(f"the record's LoRA {name!r} has no weight")
        loras.append(LoraUse(name=name, path=str(path), sha256=sha, weight=float(weight),
                             short_hash=str(entry.get("a1111_hash") or "")))
    return tuple(loras)


def recorded_embeddings(record: dict) -> tuple:
    """The embeddings a job's prompts used, each file checked against its recorded sha256."""
    from sdxl_nb.config.embeddings import EmbeddingUse

    embeddings = []
    for entry in entries(record, "embeddings"):
        name, path, sha = _recorded_file("embedding", entry)
        vectors = entry.get("vectors")
        vectors = vectors if isinstance(vectors, int) and not isinstance(vectors, bool) and vectors >= 0 else 0
        embeddings.append(EmbeddingUse(name=name, path=str(path), sha256=sha, vectors=vectors))
    return tuple(embeddings)


