"""A job record -> the exact request that ran (recorded prompts, scheduler config, seeds, verified inputs)."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from sdxl_nb.audit.integrity import input_file
from sdxl_nb.config.limits import MAX_BATCH, MAX_INPUT_BYTES, MAX_SIZE, MAX_STEPS, MIN_SIZE
from sdxl_nb.config.presets import ModelPreset, Presets, SchedulerPreset, StylePreset, load_presets
from sdxl_nb.config.trusted_folders import (
    OUTSIDE_MODEL_FOLDERS,
    NotTrusted,
    check_model_file,
    in_model_folders,
    trusted_model_file,
)
from sdxl_nb.errors import InputError
from sdxl_nb.record.config_codec import decode_config
from sdxl_nb.record.store import sha256_file
from sdxl_nb.request.resolve import InputImage, ResolvedRequest

REPLAYABLE_MODES = ("txt2img", "img2img", "inpaint")


class ReplayError(Exception):
    """A record that cannot be re-run as it stands; the message is one line saying why."""


# A record naming a model file outside the user's model folders, or an image outside the audited folder, raises
# NotTrusted (config.trusted_folders): that job is "not re-run", nothing of it is opened, the audit goes on.
__all__ = ["NotTrusted", "ReplayError", "request_from_record"]
# A model file recorded outside the user's folders, found in them by name and sha256: said in the re-run's notes.
_FOUND: ContextVar[list[str] | None] = ContextVar("sdxl_nb_found_in_your_folders", default=None)


def _trusted(path: object, kind: str, sha256: object, what: str, digest=None) -> Path:
    """The file to load for a recorded model file (config.trusted_folders.trusted_model_file): the recorded one in the
    user's folders, else the user's own file of the same name and sha256 (noted), else NotTrusted."""
    found, note = trusted_model_file(path, kind, sha256, what, digest)
    notes = _FOUND.get()
    if note and notes is not None:
        notes.append(note)
    return found


def _size(value: object) -> tuple[int, int] | None:
    """A recorded [width, height] (None when the record has no usable one)."""
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 20 for v in value)):
        return value[0], value[1]
    return None


def scheduler_kwargs(config: dict | None) -> dict:
    """The recorded scheduler config as from_config keywords (infinities were stored as text)."""
    if config is not None and not isinstance(config, dict):
        raise ReplayError(f"the record's scheduler config is not a mapping (got {type(config).__name__})")
    return decode_config(dict(config or {}))


def _field(record: dict, key: str, kind: type | tuple[type, ...]):
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ReplayError(f"the record has no usable {key!r} (got {_short(value)})")
    if isinstance(value, float) and value != value:
        raise ReplayError(f"the record's {key!r} is not a number")
    return value


def _within(record: dict, key: str, low: int, high: int) -> int:
    """A recorded whole number inside the range a request accepts (a hostile record asks for no huge run)."""
    value = _field(record, key, int)
    if not low <= value <= high:
        raise ReplayError(f"the record's {key} {_short(value)} is out of range; accepted: {low} to {high}")
    return value


def _input(record: dict, key: str, folder: Path) -> InputImage | None:
    entry = record.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ReplayError(f"the record's {key} has no path")
    path = input_file(folder, key, entry["path"])
    actual = _checked_file(path, entry.get("sha256"), key, MAX_INPUT_BYTES)
    size = _size(entry.get("size"))
    if size is None:
        from PIL import Image

        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's ways of saying "not a readable image"
            raise ReplayError(f"{key} {path} is not a readable image ({exc})") from None
    return InputImage(path=str(path), sha256=actual, size=size)


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
    init, mask = _input(record, "init_image", folder), _input(record, "mask_image", folder)
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
    token = _FOUND.set(found)
    try:
        networks = dict(loras=recorded_loras(record), embeddings=recorded_embeddings(record),
                        hires=recorded_hires(record), ip_adapter=recorded_ip_adapter(record, folder),
                        controlnets=recorded_controlnets(record, folder))
    finally:
        _FOUND.reset(token)
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
        path = _trusted(entry.get("path"), "upscaler", entry.get("sha256"), what)
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
        raise ReplayError(f"the record's {kind} entry {_short(entry)} has no name, path and sha256")
    path = _trusted(entry["path"], kind.lower(), entry["sha256"], f"{kind} {entry['name']!r}")
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
    for entry in _entries(record, "loras"):
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
    for entry in _entries(record, "embeddings"):
        name, path, sha = _recorded_file("embedding", entry)
        vectors = entry.get("vectors")
        vectors = vectors if isinstance(vectors, int) and not isinstance(vectors, bool) and vectors >= 0 else 0
        embeddings.append(EmbeddingUse(name=name, path=str(path), sha256=sha, vectors=vectors))
    return tuple(embeddings)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _entries(record: dict, key: str) -> list:
    """A record's list of used files (LoRAs, embeddings, ControlNets, IP-Adapter images); [] when it has none."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReplayError(f"the record's {key} is not a list (got {type(value).__name__})")
    return value


def _checked_file(path: Path, recorded: object, what: str, max_bytes: int | None = None) -> str:
    if not path.is_file():
        raise ReplayError(f"{what} ({path}) is missing; the job cannot be re-run from its record")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ReplayError(f"{what} ({path}) is larger than {max_bytes >> 20} MiB; an input image is not read")
    actual = sha256_file(path)
    if isinstance(recorded, str) and actual != recorded:
        raise ReplayError(f"{what} ({path}) changed since the job (sha256 {actual[:12]}..., recorded {recorded[:12]}...)")
    return actual


def recorded_ip_adapter(record: dict, folder: str | Path):
    """The IpAdapterUse a job ran with (None when it had none); its weights and encoder must lie in the user's
    IP-Adapter folders, its images in the audited folder, and every file must still hold what the job used."""
    from sdxl_nb.config.ip_adapters import _ENCODER_WEIGHTS, IpAdapterFile, IpAdapterUse

    entry = record.get("ip_adapter")
    if entry is None:
        return None
    keys = ("name", "path", "sha256", "root", "subfolder", "image_encoder", "scale")
    if not isinstance(entry, dict) or any(key not in entry for key in keys):
        missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
        raise ReplayError(f"the record's ip_adapter has no {', '.join(missing)}")
    encoder = entry["image_encoder"]
    texts = (entry["name"], entry["path"], entry["root"], entry["subfolder"])
    if not (all(isinstance(v, str) for v in texts) and isinstance(encoder, dict)
            and isinstance(encoder.get("folder"), str) and isinstance(encoder.get("path"), str)):
        raise ReplayError("the record's ip_adapter names its files by something other than text")
    name = entry["name"]
    what = f"IP-Adapter {name!r}"
    if not in_model_folders(entry["path"], "ip_adapter"):  # the user's own copy, laid out as recorded (root/subfolder)
        found = _trusted(entry["path"], "ip_adapter", entry["sha256"], what)
        depth = len(Path(entry["subfolder"]).parts)
        root = found.parents[depth] if depth < len(found.parents) else found.parent
        if root.joinpath(entry["subfolder"], found.name) != found:
            raise NotTrusted(OUTSIDE_MODEL_FOLDERS, entry["path"], what)
        moved = IpAdapterFile(name, str(found), str(root), entry["subfolder"], encoder["folder"], "")
        entry, encoder = {**entry, "path": str(found), "root": str(root)}, {**encoder, "path": str(moved.encoder_path)}
    # What diffusers' load_ip_adapter opens: root/subfolder/<weight name> and the encoder folder under root.
    loaded = Path(entry["root"]) / entry["subfolder"] / Path(entry["path"]).name
    encoder_path = IpAdapterFile(name, entry["path"], entry["root"], entry["subfolder"], encoder["folder"], "").encoder_path
    for path in (entry["path"], loaded, encoder["path"], encoder_path):
        check_model_file(path, "ip_adapter", what)
    sha = _checked_file(Path(entry["path"]), entry["sha256"], what)
    weights = [encoder_path / w for w in _ENCODER_WEIGHTS if (encoder_path / w).is_file()]
    for weight in weights:
        check_model_file(weight, "ip_adapter", f"{what}'s image encoder")
    encoder_sha = _checked_file(weights[0] if weights else encoder_path / _ENCODER_WEIGHTS[0],
                                encoder.get("sha256"), f"{what}'s image encoder")
    images = []
    for number, image in enumerate(_entries(record, "ip_images"), 1):
        if not (isinstance(image, dict) and isinstance(image.get("path"), str)):
            raise ReplayError(f"the record's IP-Adapter image {number} has no path")
        path = input_file(Path(folder), f"IP-Adapter image {number}", image["path"])
        actual = _checked_file(path, image.get("sha256"), f"IP-Adapter image {number}", MAX_INPUT_BYTES)
        images.append(InputImage(path=str(path), sha256=actual, size=_size(image.get("size")) or (0, 0)))
    if not images:
        raise ReplayError("the record's IP-Adapter has no ip_images")
    scale = entry["scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ReplayError(f"the record's IP-Adapter scale {_short(scale)} is not a number")
    return IpAdapterUse(name=name, path=entry["path"], sha256=sha, a1111_hash=str(entry.get("a1111_hash") or ""),
                        root=entry["root"], subfolder=entry["subfolder"], encoder_folder=encoder["folder"],
                        encoder_sha256=encoder_sha, encoder_revision=encoder.get("revision"), images=tuple(images),
                        scale=float(scale))


def _trusted_controlnet(entry: object, position: int, folder: Path) -> object:
    """The unit's entry with its control image resolved inside the audited folder; NotTrusted when its weights lie
    outside the user's ControlNet folders and they hold no copy (weights gone from there are found by name, as
    recorded_unit does)."""
    from sdxl_nb.config.controlnets import ControlNetFile
    from sdxl_nb.errors import InputError

    model, image = (entry.get(key) if isinstance(entry, dict) else None for key in ("model", "image"))
    if not (isinstance(model, dict) and isinstance(image, dict) and isinstance(image.get("path"), str)):
        return entry  # recorded_unit says what is missing
    what = f"ControlNet {position} {str(model.get('name'))!r}"
    path = model.get("path")
    if not isinstance(path, str) or not path:
        raise ReplayError(f"the record's {what} has no path")
    if Path(path).exists():  # the user's own copy of weights that lie outside their folders is used instead
        name = str(model.get("name"))
        found = _trusted(path, "controlnet", model.get("sha256"), what,
                         lambda candidate: ControlNetFile(name, str(candidate), "").content_hash())
        path = path if in_model_folders(path, "controlnet") else str(found)
        try:
            check_model_file(ControlNetFile(name, path, "").weights_file(), "controlnet", what)
        except InputError as exc:
            raise ReplayError(str(exc)) from None
    checked = input_file(folder, f"ControlNet {position} control image", image["path"])
    return {**entry, "model": {**model, "path": path}, "image": {**image, "path": str(checked)}}


def recorded_controlnets(record: dict, folder: Path) -> tuple:
    """The ControlNets a job ran with: weights and control images checked against their recorded sha256."""
    from sdxl_nb.request.control import recorded_unit

    units = []
    for position, entry in enumerate(_entries(record, "controlnets")):
        entry = _trusted_controlnet(entry, position, Path(folder))
        try:
            units.append(recorded_unit(entry, position, folder))
        except NotTrusted:
            raise
        except (ValueError, TypeError) as exc:  # TypeError: a recorded setting of the wrong type
            raise ReplayError(str(exc)) from None
    return tuple(units)
