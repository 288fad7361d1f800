"""A job record -> the exact request that ran (recorded prompts, scheduler config, seeds, verified inputs)."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.audit.integrity import resolve_path
from sdxl_nb.config.presets import ModelPreset, Presets, SchedulerPreset, StylePreset, load_presets
from sdxl_nb.record.config_codec import decode_config
from sdxl_nb.record.store import sha256_file
from sdxl_nb.request.resolve import InputImage, ResolvedRequest

REPLAYABLE_MODES = ("txt2img", "img2img", "inpaint")


class ReplayError(Exception):
    """A record that cannot be re-run as it stands; the message is one line saying why."""


def scheduler_kwargs(config: dict | None) -> dict:
    """The recorded scheduler config as from_config keywords (infinities were stored as text)."""
    return decode_config(dict(config or {}))


def _field(record: dict, key: str, kind: type | tuple[type, ...]):
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ReplayError(f"the record has no usable {key!r} (got {value!r})")
    return value


def _input(record: dict, key: str, folder: Path) -> InputImage | None:
    entry = record.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ReplayError(f"the record's {key} has no path")
    path = resolve_path(folder, entry["path"])
    if not path.is_file():
        raise ReplayError(f"{key} {path} is missing; the job cannot be re-run from its record")
    actual = sha256_file(path)
    if entry.get("sha256") and actual != entry["sha256"]:
        raise ReplayError(f"{key} {path} changed since the job (sha256 {actual[:12]}..., recorded "
                          f"{str(entry['sha256'])[:12]}...)")
    size = entry.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        from PIL import Image

        with Image.open(path) as image:
            size = image.size
    return InputImage(path=str(path), sha256=actual, size=(int(size[0]), int(size[1])))


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
    steps, cfg = _field(record, "steps", int), float(_field(record, "cfg", (int, float)))
    width, height, batch = _field(record, "width", int), _field(record, "height", int), _field(record, "batch", int)
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
    return ResolvedRequest(
        mode=mode, model=model_preset,
        scheduler=SchedulerPreset(name=str(scheduler.get("name")), cls=scheduler["class"], kwargs=kwargs,
                                  comfy=comfy),
        style=style_preset, prompt=str(record.get("prompt", "")), negative_prompt=str(record.get("negative_prompt", "")),
        styled_prompt=_field(record, "styled_prompt", str),
        effective_negative_prompt=_field(record, "effective_negative_prompt", str),
        steps=steps, cfg=cfg, width=width, height=height, batch=batch, seed=seeds[0], seeds=tuple(seeds),
        strength=strength, init_image=init, mask_image=mask, notes=("re-run from the record",),
        loras=recorded_loras(record), embeddings=recorded_embeddings(record), hires=recorded_hires(record),
        ip_adapter=recorded_ip_adapter(record, folder), controlnets=recorded_controlnets(record, folder),
        **recorded_refiner(record, presets))


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
    return {"refiner": preset, "refiner_switch": float(switch)}



def recorded_hires(record: dict):
    """The hires pass a job ran (None without one); an upscaler model must still hold what the job used."""
    from sdxl_nb.config.hires import HiresFix
    from sdxl_nb.config.upscalers import recorded_upscaler

    entry = record.get("hires")
    if entry is None:
        return None
    try:
        if not isinstance(entry, dict):
            raise ValueError(f"the record's hires {entry!r} is not a mapping")
        upscaler = recorded_upscaler(entry.get("upscaler"))
        return HiresFix(scale=float(_field(entry, "scale", (int, float))), steps=_field(entry, "steps", int),
                        denoise=float(_field(entry, "denoise", (int, float))), upscaler=upscaler,
                        width=_field(entry, "width", int), height=_field(entry, "height", int))
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    except Exception as exc:  # an unknown built-in name (InputError)
        raise ReplayError(f"the record's hires cannot be re-run: {exc}") from None


def _recorded_file(kind: str, entry: object) -> tuple[str, Path, str]:
    """(name, path, sha256) of a recorded LoRA or embedding whose file still holds what the job used."""
    if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)):
        raise ReplayError(f"the record's {kind} entry {entry!r} has no name, path and sha256")
    path = Path(entry["path"])
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
    for entry in record.get("loras") or []:
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
    for entry in record.get("embeddings") or []:
        name, path, sha = _recorded_file("embedding", entry)
        embeddings.append(EmbeddingUse(name=name, path=str(path), sha256=sha, vectors=int(entry.get("vectors") or 0)))
    return tuple(embeddings)


def _checked_file(path: Path, recorded: object, what: str) -> str:
    if not path.is_file():
        raise ReplayError(f"{what} ({path}) is missing; the job cannot be re-run from its record")
    actual = sha256_file(path)
    if isinstance(recorded, str) and actual != recorded:
        raise ReplayError(f"{what} ({path}) changed since the job (sha256 {actual[:12]}..., recorded {recorded[:12]}...)")
    return actual


def recorded_ip_adapter(record: dict, folder: str | Path):
    """The IpAdapterUse a job ran with (None when it had none); every file must still hold what the job used."""
    from sdxl_nb.config.ip_adapters import _ENCODER_WEIGHTS, IpAdapterUse

    entry = record.get("ip_adapter")
    if entry is None:
        return None
    keys = ("name", "path", "sha256", "root", "subfolder", "image_encoder", "scale")
    if not isinstance(entry, dict) or any(key not in entry for key in keys):
        raise ReplayError(f"the record's ip_adapter has no {', '.join(k for k in keys if k not in (entry or {}))}")
    name = entry["name"]
    sha = _checked_file(Path(entry["path"]), entry["sha256"], f"IP-Adapter {name!r}")
    encoder = entry["image_encoder"]
    weights = [Path(encoder["path"]) / w for w in _ENCODER_WEIGHTS if (Path(encoder["path"]) / w).is_file()]
    encoder_sha = _checked_file(weights[0] if weights else Path(encoder["path"]) / _ENCODER_WEIGHTS[0],
                           encoder.get("sha256"), f"IP-Adapter {name!r}'s image encoder")
    images = []
    for number, image in enumerate(record.get("ip_images") or [], 1):
        if not (isinstance(image, dict) and isinstance(image.get("path"), str)):
            raise ReplayError(f"the record's IP-Adapter image {number} has no path")
        path = resolve_path(Path(folder), image["path"])
        actual = _checked_file(path, image.get("sha256"), f"IP-Adapter image {number}")
        size = image.get("size") or [0, 0]
        images.append(InputImage(path=str(path), sha256=actual, size=(int(size[0]), int(size[1]))))
    if not images:
        raise ReplayError("the record's IP-Adapter has no ip_images")
    scale = entry["scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ReplayError(f"the record's IP-Adapter scale {scale!r} is not a number")
    return IpAdapterUse(name=name, path=entry["path"], sha256=sha, a1111_hash=str(entry.get("a1111_hash") or ""),
                        root=entry["root"], subfolder=entry["subfolder"], encoder_folder=encoder["folder"],
                        encoder_sha256=encoder_sha, encoder_revision=encoder.get("revision"), images=tuple(images),
                        scale=float(scale))


def recorded_controlnets(record: dict, folder: Path) -> tuple:
    """The ControlNets a job ran with: weights and control images checked against their recorded sha256."""
    from sdxl_nb.request.control import recorded_unit

    units = []
    for position, entry in enumerate(record.get("controlnets") or []):
        try:
            units.append(recorded_unit(entry, position, folder))
        except ValueError as exc:
            raise ReplayError(str(exc)) from None
    return tuple(units)
