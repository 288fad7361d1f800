"""Our record chunk read back as typed request fields: a field of the wrong type is a "not read" line, never a value."""

from __future__ import annotations

import math
import re

MAX_WHOLE = 2**64  # past any seed or size: a 5000-digit number is not read as one
MODES = ("txt2img", "img2img", "inpaint")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KINDS = {  # kind -> (test, what it must be, as the line says)
    "text": (lambda v: isinstance(v, str), "text"),
    "whole": (lambda v: is_whole(v), "a whole number"),
    "number": (lambda v: is_number(v), "a number"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "sha256": (lambda v: isinstance(v, str) and _SHA256.fullmatch(v) is not None, "a sha256 (64 hex digits)"),
}


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_WHOLE <= value <= MAX_WHOLE


def is_number(value) -> bool:
    return is_whole(value) or (isinstance(value, float) and math.isfinite(value))


def shown(value, limit: int = 60) -> str:
    """A value as a line shows it: its repr, cut short."""
    text = repr(value) if not isinstance(value, str) else repr(value[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


class Reader:
    """Typed reads from a JSON object; each wrong type adds one "not read: NAME (VALUE is not KIND)" line."""

    def __init__(self):
        self.problems: list[str] = []

    def get(self, obj, key: str, kind: str, name: str | None = None):
        value = obj.get(key) if isinstance(obj, dict) else None
        if value is None:
            return None
        test, what = _KINDS[kind]
        if test(value):
            return float(value) if kind == "number" and isinstance(value, float) else value
        self.problems.append(f"not read: {name or key} ({shown(value)} is not {what})")
        return None

    def part(self, obj, key: str, name: str | None = None) -> dict:
        """A nested object, or {} (said when it is there but not an object)."""
        return self.get(obj, key, "object", name) or {}


def record_fields(record: dict, reader: Reader) -> tuple[dict, dict, dict]:
    """(request fields, unmapped notes, input sha256s) from our record chunk. The sha256s, by field: init_image,
    mask_image, ip_images (a list beside the fields' paths), controlnets (one per unit kept, or None)."""
    r = reader
    image = r.part(record, "image")
    unmapped, inputs = {}, {}
    mode = r.get(record, "mode", "text")
    if mode == "animate":  # a frame: its own prompt and seed make the same picture as a still, unless blended
        mode = "img2img" if record.get("init_image") else "txt2img"
        index = r.get(image, "index", "whole", "image index")
        unmapped["animation"] = f"frame {(index or 0) + 1} of an animation"
        t = r.get(image, "t", "number", "image t")
        if t is not None and (image.get("seed_end") is not None or image.get("prompt_end")):
            unmapped["animation"] += f" blended toward its end at t={t:.3g}: a still cannot blend"
    elif mode is not None and mode not in MODES:
        r.problems.append(f"not read: mode ({shown(mode)} is not one of {', '.join(MODES)})")
        mode = None
    prompt = r.get(image, "prompt", "text", "image prompt") if "prompt" in image else r.get(record, "prompt", "text")
    seed = r.get(image, "seed", "whole", "image seed") if "seed" in image else r.get(record, "seed", "whole")
    refiner = r.part(record, "refiner")
    fields = {"prompt": prompt, "negative_prompt": r.get(record, "negative_prompt", "text"),
              "style": r.get(r.part(record, "style"), "name", "text", "style name"),
              "scheduler": r.get(r.part(record, "scheduler"), "name", "text", "scheduler name"),
              "steps": r.get(record, "steps", "whole"), "cfg": r.get(record, "cfg", "number"), "seed": seed,
              "width": r.get(record, "width", "whole"), "height": r.get(record, "height", "whole"),
              "model": r.get(r.part(record, "model"), "id", "text", "model id"), "mode": mode,
              "strength": r.get(record, "strength", "number"),
              "refiner": r.get(refiner, "id", "text", "refiner id"),
              "refiner_switch": r.get(refiner, "switch", "number", "refiner switch"),
              "refiner_switch_by": r.get(refiner, "switch_by", "text", "refiner switch by")}
    # Automatic (and records before schedule types) is the request's default: nothing to carry.
    if record.get("schedule_type") not in (None, "Automatic"):
        fields["schedule_type"] = r.get(record, "schedule_type", "text")
    for name in ("init_image", "mask_image"):
        entry = r.part(record, name)
        path, sha256 = r.get(entry, "path", "text", f"{name} path"), r.get(entry, "sha256", "sha256", f"{name} sha256")
        if path is not None:
            fields[name] = path
            inputs[name] = sha256
    inpaint = r.part(record, "inpaint")
    if inpaint:  # A1111's inpaint settings (request/inpaint.py)
        fields.update(mask_blur=r.get(inpaint, "mask_blur", "whole", "inpaint mask_blur"),
                      masked_content=r.get(inpaint, "masked_content", "text", "inpaint masked_content"),
                      inpaint_area=r.get(inpaint, "inpaint_area", "text", "inpaint inpaint_area"),
                      only_masked_padding=r.get(inpaint, "only_masked_padding", "whole", "inpaint only_masked_padding"))
    hires = r.part(record, "hires")
    if hires:
        fields.update(hires_scale=r.get(hires, "scale", "number", "hires scale"),
                      hires_steps=r.get(hires, "steps", "whole", "hires steps"),
                      hires_denoise=r.get(hires, "denoise", "number", "hires denoise"),
                      hires_upscaler=r.get(r.part(hires, "upscaler", "hires upscaler"), "name", "text",
                                           "hires upscaler name"))
        resize = r.get(hires, "resize", "list", "hires resize")
        if resize is not None:  # A1111's "Hires resize": the target size replaces the scale
            if len(resize) == 2 and all(is_whole(side) for side in resize):
                fields.update(hires_resize=tuple(resize), hires_scale=None)
            else:
                r.problems.append(f"not read: hires resize ({shown(resize)} is not a width and a height)")
    adapter = r.part(record, "ip_adapter")
    if r.get(adapter, "name", "text", "ip_adapter name") is not None:  # the IP-Adapter, its images and scale
        images = [(path, r.get(entry, "sha256", "sha256", f"ip_images[{n}] sha256"))
                  for n, entry in enumerate(r.get(record, "ip_images", "list") or [])
                  if (path := r.get(entry, "path", "text", f"ip_images[{n}] path")) is not None]
        fields.update(ip_adapter=adapter["name"],
                      ip_scale=r.get(adapter, "scale", "number", "ip_adapter scale"),
                      ip_images=[path for path, _sha in images])
        inputs["ip_images"] = [sha for _path, sha in images]
    units = r.get(record, "controlnets", "list")
    if units is not None:  # each unit as a request gives it (the kept control image)
        read = [_control_unit(unit, n, r) for n, unit in enumerate(units)]
        fields["controlnets"] = [unit for unit, _sha in read if unit is not None]
        inputs["controlnets"] = [sha for unit, sha in read if unit is not None]
    return {key: value for key, value in fields.items() if value is not None}, unmapped, inputs


def _control_unit(unit, n: int, r: Reader) -> tuple[dict | None, str | None]:
    name = f"controlnets[{n}]"
    if not isinstance(unit, dict):
        r.problems.append(f"not read: {name} ({shown(unit)} is not an object)")
        return None, None
    settings, image = r.part(unit, "settings", f"{name} settings"), r.part(unit, "image", f"{name} image")
    fields = {"model": r.get(r.part(unit, "model", f"{name} model"), "name", "text", f"{name} model name"),
              "image": r.get(image, "path", "text", f"{name} image path"),
              "preprocessor": r.get(unit, "preprocessor", "text", f"{name} preprocessor"),
              **{key: r.get(unit, key, "number", f"{name} {key}") for key in ("weight", "start", "end")},
              **{key: r.get(settings, key, "whole", f"{name} {key}") for key in ("low_threshold", "high_threshold")
                 if key in settings}}
    if fields["model"] is None:  # a unit without its ControlNet is nothing to load
        if "model" not in unit:
            r.problems.append(f"not read: {name} (it names no ControlNet model)")
        return None, None
    return fields, r.get(image, "sha256", "sha256", f"{name} image sha256")


def upscale_note(record: dict, reader: Reader) -> str:
    """What an upscale job's record says it did, in one line."""
    upscale = reader.part(record, "upscale")
    scale = reader.get(upscale, "scale", "number", "upscale scale")
    if scale is None:
        return "an upscale job's image"
    upscaler = reader.get(reader.part(upscale, "upscaler", "upscaler"), "name", "text", "upscaler name") or "?"
    width, height = (reader.get(record, key, "whole") for key in ("width", "height"))
    job = reader.get(record, "job_id", "text")
    return f"upscaled x{scale:g} with {upscaler} to {width}x{height} (job {job})"
