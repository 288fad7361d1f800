"""Generation parameters read back from a PNG (ours, A1111's `parameters`, ComfyUI's API graph) as request fields."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field

from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.errors import InputError
from sdxl_nb.record.metadata import parse_parameters

SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
_TEXT_KEYS = ("text", "text_g", "string", "value", "prompt", "conditioning", "conditioning_to")
_LATENT_KEYS = ("samples", "latent", "latent_image")
# Single-file checkpoint names of the official SDXL releases (what A1111 and ComfyUI write) -> registry ids.
CHECKPOINT_NAMES = {"sd_xl_base_1.0": "stabilityai/stable-diffusion-xl-base-1.0",
                    "sd_xl_base_1.0_0.9vae": "stabilityai/stable-diffusion-xl-base-1.0",
                    "sd_xl_turbo_1.0": "stabilityai/sdxl-turbo", "sd_xl_turbo_1.0_fp16": "stabilityai/sdxl-turbo",
                    "sd_xl_refiner_1.0": "stabilityai/stable-diffusion-xl-refiner-1.0",
                    "sd_xl_refiner_1.0_0.9vae": "stabilityai/stable-diffusion-xl-refiner-1.0"}


@dataclass(frozen=True)
class PngParameters:
    source: str  # "sdxl_nb", "A1111" or "ComfyUI": who wrote the parameters
    fields: dict  # request fields found: prompt, negative_prompt, style, scheduler, steps, cfg, seed, width, height,
    #              model (a registry id), and for our own images mode, strength, init_image, mask_image
    unmapped: dict = field(default_factory=dict)  # what the PNG says that has no request field here, as text
    text: str = ""  # the parameters as stored (A1111 text or ComfyUI JSON), to show
    record: dict | None = None  # our PNG's record chunk


def read_png_parameters(data: bytes | str | os.PathLike, presets: Presets | None = None) -> PngParameters:
    """Read a PNG's generation parameters; InputError when it is not a PNG or carries none we know."""
    from PIL import Image, UnidentifiedImageError

    presets = presets or load_presets()
    raw = data if isinstance(data, bytes) else open(data, "rb").read()  # noqa: SIM115 (read at once)
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            kind, chunks = image.format, dict(getattr(image, "text", {}) or image.info)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError("not a readable image; PNG Info reads PNG files") from None
    if kind != "PNG":
        raise InputError(f"a {kind} image carries no PNG text chunks; PNG Info reads PNG files")
    if isinstance(chunks.get("sdxl_nb"), str):
        record = json.loads(chunks["sdxl_nb"])
        if isinstance(record, dict) and record.get("mode") == "upscale":
            return _upscaled(record, chunks.get("parameters"), presets)
        return _ours(record, chunks.get("parameters", ""))
    if isinstance(chunks.get("parameters"), str):
        return _a1111(chunks["parameters"], presets)
    if isinstance(chunks.get("prompt"), str):
        return _comfy(chunks["prompt"], presets)
    raise InputError("this PNG has no generation parameters (no sdxl_nb record, A1111 'parameters' or ComfyUI "
                     "'prompt' chunk)")


# ---- ours ----
def _ours(record: dict, text: str) -> PngParameters:
    image = record.get("image") or {}
    unmapped, mode = {}, record.get("mode")
    if mode == "animate":  # a frame: its own prompt and seed make the same picture as a still, unless blended
        mode = "img2img" if record.get("init_image") else "txt2img"
        unmapped["animation"] = f"frame {image.get('index', 0) + 1} of an animation"
        if image.get("t") is not None and (image.get("seed_end") is not None or image.get("prompt_end")):
            unmapped["animation"] += f" blended toward its end at t={image['t']:.3g}: a still cannot blend"
    fields = {"prompt": image.get("prompt", record.get("prompt")), "negative_prompt": record.get("negative_prompt"),
              "style": (record.get("style") or {}).get("name"),
              "scheduler": (record.get("scheduler") or {}).get("name"), "steps": record.get("steps"),
              "cfg": record.get("cfg"), "seed": image.get("seed", record.get("seed")), "width": record.get("width"),
              "height": record.get("height"), "model": (record.get("model") or {}).get("id"),
              "mode": mode, "strength": record.get("strength"),
              "refiner": (record.get("refiner") or {}).get("id"),
              "refiner_switch": (record.get("refiner") or {}).get("switch")}
    for name in ("init_image", "mask_image"):
        if record.get(name):
            fields[name] = record[name]["path"]
    hires = record.get("hires")
    if isinstance(hires, dict):
        fields.update(hires_scale=hires.get("scale"), hires_steps=hires.get("steps"), hires_denoise=hires.get("denoise"),
                      hires_upscaler=(hires.get("upscaler") or {}).get("name"))
    if isinstance(record.get("ip_adapter"), dict):  # the IP-Adapter, its images and scale
        fields.update(ip_adapter=record["ip_adapter"].get("name"), ip_scale=record["ip_adapter"].get("scale"),
                      ip_images=[image["path"] for image in record.get("ip_images") or []])
    if isinstance(record.get("controlnets"), list):  # each unit as a request gives it (the kept control image)
        fields["controlnets"] = [_control_unit(unit) for unit in record["controlnets"] if isinstance(unit, dict)]
    fields = {key: value for key, value in fields.items() if value is not None}
    return PngParameters("sdxl_nb", fields, unmapped, text, record)


def _control_unit(unit: dict) -> dict:
    settings = unit.get("settings") if isinstance(unit.get("settings"), dict) else {}
    return {"model": (unit.get("model") or {}).get("name"), "image": (unit.get("image") or {}).get("path"),
            "preprocessor": unit.get("preprocessor"), "weight": unit.get("weight"), "start": unit.get("start"),
            "end": unit.get("end"), **{key: value for key, value in settings.items()
                                       if key in ("low_threshold", "high_threshold")}}


def _upscaled(record: dict, text: str | None, presets: Presets) -> PngParameters:
    """An upscale job's image: what made the source (its A1111 parameters, kept as A1111's Extras keeps them),
    with the upscale said; the record chunk is the upscale job's."""
    found = _a1111(text, presets) if text else PngParameters("sdxl_nb", {}, {}, "")
    upscale = record.get("upscale") or {}
    note = (f"upscaled x{upscale.get('scale', '?'):g} with {(upscale.get('upscaler') or {}).get('name', '?')} to "
            f"{record.get('width')}x{record.get('height')} (job {record.get('job_id')})"
            if isinstance(upscale.get("scale"), (int, float)) else "an upscale job's image")
    return PngParameters("sdxl_nb", found.fields, {**found.unmapped, "upscale": note}, found.text, record)


# ---- A1111 ----
def _a1111(text: str, presets: Presets) -> PngParameters:
    values = parse_parameters(text)
    fields: dict = {"prompt": values.pop("Prompt", ""), "negative_prompt": values.pop("Negative prompt", ""),
                    "style": raw_style(presets)}  # the text is the prompt as sent: no style on top of it
    unmapped: dict = {}
    for key, name, kind in (("Steps", "steps", int), ("CFG scale", "cfg", float), ("Seed", "seed", int)):
        if key in values:
            try:
                fields[name] = kind(values.pop(key))
            except ValueError:
                unmapped[key] = values.get(key, "")
    size = values.pop("Size", "")
    try:
        fields["width"], fields["height"] = (int(side) for side in size.lower().split("x"))
    except ValueError:
        if size:
            unmapped["Size"] = size
    sampler, schedule = values.pop("Sampler", None), values.pop("Schedule type", None)
    if sampler:
        scheduler = scheduler_from_a1111(sampler, schedule, presets)
        if scheduler:
            fields["scheduler"] = scheduler
        else:
            unmapped["Sampler"] = f"{sampler}" + (f", {schedule}" if schedule else "") + " (no scheduler here matches)"
    model = values.pop("Model", None)
    if model:
        fields["model"] = model_id(model, presets)
    if not fields.get("model"):
        # A renamed checkpoint is still found by its A1111 Model hash (the file's sha256, first 10 hex digits).
        fields["model"] = checkpoint_by_hash(values.get("Model hash"))
        if fields["model"]:
            values.pop("Model hash")
        elif model:
            _note(unmapped, "Model", model)
    refiner = values.pop("Refiner", None)
    if refiner:
        name, _, short = refiner.partition(" [")  # "NAME [HASH]": the hash names the file, the name the model
        # a renamed single-file refiner is still found by its short hash, as a renamed base checkpoint is
        fields["refiner"] = (model_id(name, presets) or checkpoint_by_hash(short.rstrip("]") or None)
                             or _note(unmapped, "Refiner", refiner))
        try:
            fields["refiner_switch"] = float(values.pop("Refiner switch at", "0.8"))
        except ValueError:
            unmapped["Refiner switch at"] = values.get("Refiner switch at", "")
    if "Hires upscale" in values:  # a txt2img hires fix: its Denoising strength is the second pass's
        try:
            fields["hires_scale"] = float(values.pop("Hires upscale"))
            fields["hires_upscaler"] = values.pop("Hires upscaler", None)
            if "Hires steps" in values:
                fields["hires_steps"] = int(values.pop("Hires steps"))
            if "Denoising strength" in values:
                fields["hires_denoise"] = float(values.pop("Denoising strength"))
        except ValueError:
            unmapped["Hires upscale"] = "unreadable hires fix settings"
    if "Denoising strength" in values:
        unmapped["Denoising strength"] = values.pop("Denoising strength") + " (img2img: the init image is not in the PNG)"
    unmapped.update({key: value for key, value in values.items() if key not in ("Version", "Style")})
    return PngParameters("A1111", {k: v for k, v in fields.items() if v is not None}, unmapped, text)


def scheduler_from_a1111(sampler: str, schedule: str | None, presets: Presets) -> str | None:
    """The scheduler preset A1111's (Sampler, Schedule type) names; older A1111 wrote "DPM++ 2M Karras" as one."""
    pairs = {tuple(s.a1111): s.name for s in presets.schedulers.values() if s.a1111}
    if schedule:
        return pairs.get((sampler, schedule))
    for suffix in ("Karras", "Exponential"):
        if sampler.endswith(" " + suffix):
            return pairs.get((sampler.removesuffix(" " + suffix), suffix))
    return pairs.get((sampler, "Automatic"))


# ---- ComfyUI ----
def _comfy(text: str, presets: Presets) -> PngParameters:
    try:
        graph = json.loads(text)
    except ValueError:
        raise InputError("the PNG's ComfyUI 'prompt' chunk is not valid JSON") from None
    if not isinstance(graph, dict):
        raise InputError("the PNG's ComfyUI 'prompt' chunk is not an API graph")
    samplers = sorted((key for key, node in graph.items() if _class(node) in SAMPLER_NODES), key=_node_order)
    if not samplers:
        raise InputError("the PNG's ComfyUI graph has no KSampler node to read the parameters from")
    inputs = graph[samplers[0]].get("inputs", {})
    fields: dict = {"style": raw_style(presets), "prompt": _text(graph, inputs.get("positive")) or "",
                    "negative_prompt": _text(graph, inputs.get("negative")) or ""}
    unmapped: dict = {}
    for key, name, kind in (("seed", "seed", int), ("noise_seed", "seed", int), ("steps", "steps", int),
                            ("cfg", "cfg", float)):
        if isinstance(inputs.get(key), int | float) and not isinstance(inputs.get(key), bool):
            fields[name] = kind(inputs[key])
    pair = (inputs.get("sampler_name"), inputs.get("scheduler"))
    if all(isinstance(part, str) for part in pair):
        match = next((s.name for s in presets.schedulers.values() if s.comfy and tuple(s.comfy) == pair), None)
        fields["scheduler"] = match or _note(unmapped, "sampler", f"{pair[0]} / {pair[1]} (no scheduler here matches)")
    latent = _follow(graph, inputs.get("latent_image"), _LATENT_KEYS, lambda n: "width" in n.get("inputs", {}))
    if latent is not None:
        size = latent["inputs"]
        if isinstance(size.get("width"), int) and isinstance(size.get("height"), int):
            fields["width"], fields["height"] = size["width"], size["height"]
    if _follow(graph, inputs.get("latent_image"), _LATENT_KEYS, lambda n: _class(n) == "VAEEncode") is not None:
        unmapped["latent"] = f"img2img from an image (denoise {inputs.get('denoise')}); the init image is not in the PNG"
    loader = _follow(graph, inputs.get("model"), ("model",), lambda n: "ckpt_name" in n.get("inputs", {}))
    if loader is not None:
        checkpoint = loader["inputs"]["ckpt_name"]
        fields["model"] = model_id(checkpoint, presets) or _note(unmapped, "checkpoint", checkpoint)
    _comfy_refiner(graph, [graph[key] for key in samplers], loader, fields, unmapped, presets)
    return PngParameters("ComfyUI", {k: v for k, v in fields.items() if v is not None}, unmapped, text)


def _comfy_refiner(graph: dict, samplers: list[dict], base_loader, fields: dict, unmapped: dict,
                   presets: Presets) -> None:
    """A second sampler on another checkpoint, starting where the first stopped: the refiner and its switch."""
    if len(samplers) < 2:
        return
    second = samplers[1].get("inputs", {})
    loader = _follow(graph, second.get("model"), ("model",), lambda n: "ckpt_name" in n.get("inputs", {}))
    start, steps = second.get("start_at_step"), second.get("steps")
    if loader is None or loader is base_loader or not isinstance(start, int) or not isinstance(steps, int) or not steps:
        return
    checkpoint = loader["inputs"]["ckpt_name"]
    refiner = model_id(checkpoint, presets)
    if refiner is None:
        unmapped["refiner"] = f"{checkpoint} (not one of this lab's refiners)"
        return
    fields.update(refiner=refiner, refiner_switch=round(min(start, steps) / steps, 4))


def _class(node) -> str:
    return node.get("class_type", "") if isinstance(node, dict) else ""


def _node_order(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _link_node(graph: dict, link) -> dict | None:
    if isinstance(link, list) and link and str(link[0]) in graph:
        return graph[str(link[0])]
    return None


def _text(graph: dict, link, depth: int = 0) -> str | None:
    """The text behind a conditioning link (through zero-outs, primitives and text nodes)."""
    node = _link_node(graph, link)
    if node is None or depth > 16:
        return None
    if _class(node) == "ConditioningZeroOut":
        return ""
    for key in _TEXT_KEYS:
        value = node.get("inputs", {}).get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            found = _text(graph, value, depth + 1)
            if found is not None:
                return found
    return None


def _follow(graph: dict, link, keys: tuple[str, ...], found, depth: int = 0) -> dict | None:
    """The first node upstream of `link` (through `keys` inputs) for which `found(node)` holds."""
    node = _link_node(graph, link)
    if node is None or depth > 32:
        return None
    if found(node):
        return node
    for key in keys:
        hit = _follow(graph, node.get("inputs", {}).get(key), keys, found, depth + 1)
        if hit is not None:
            return hit
    return None


# ---- names ----
def raw_style(presets: Presets) -> str:
    """A style that sends the prompt as typed (a foreign PNG's prompt is already the whole prompt)."""
    plain = [s.name for s in presets.styles.values() if s.prompt.strip() in ("", "{prompt}") and not s.negative]
    return plain[0] if plain else presets.defaults.style


def model_id(name: str, presets: Presets) -> str | None:
    """The registry model a PNG's model or checkpoint name means: its id, its repo's last part, or that plus
    .safetensors/.ckpt (ComfyUI checkpoint files); None when none matches."""
    from sdxl_nb.config.registry import model_presets

    wanted = name.strip()
    stem = wanted.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    for suffix in (".safetensors", ".ckpt"):
        stem = stem.removesuffix(suffix)
    models = model_presets(presets)
    for model in models:
        if wanted == model or stem == model.rsplit("/", 1)[-1]:
            return model
    known = CHECKPOINT_NAMES.get(stem)
    return known if known in models else None


def checkpoint_by_hash(model_hash: str | None) -> str | None:
    """The id of the single-file checkpoint whose A1111 Model hash this is, or None."""
    if not model_hash:
        return None
    from sdxl_nb.config.checkpoints import checkpoint_sha256, list_checkpoints

    for checkpoint in list_checkpoints():
        try:
            if checkpoint_sha256(checkpoint.path)[:10] == model_hash.strip().lower():
                return checkpoint.name
        except OSError:
            continue
    return None


def _note(unmapped: dict, key: str, value: str) -> None:
    unmapped[key] = f"{value} (not one of this lab's models)" if key in ("Model", "checkpoint") else value
    return None
