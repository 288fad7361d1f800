"""Generation parameters read back from a PNG (ours, A1111's `parameters`, ComfyUI's API graph) as request fields."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from sdxl_nb.config import bounded_json
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.errors import InputError, one_line
from sdxl_nb.record.metadata import parse_parameters
from sdxl_nb.record.png_checks import UNCHECKED, control_checks, model_check, network_checks
from sdxl_nb.record.png_record import Reader, is_number, is_whole, record_fields, shown, upscale_note
from sdxl_nb.record.png_text import read_png_file, text_chunks
from sdxl_nb.record.sampler_pairs import sampler_pair_from_a1111, sampler_pair_from_comfy

SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
_TEXT_KEYS = ("text", "text_g", "string", "value", "prompt", "conditioning", "conditioning_to")
_LATENT_KEYS = ("samples", "latent", "latent_image")
_CHUNKS = ("sdxl_nb", "parameters", "prompt")  # the text chunks read; any other is never decompressed
MAX_WALK = 10_000  # nodes one walk up a ComfyUI graph visits at most (each once): a graph's size cannot stall it
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
    problems: list[str] = field(default_factory=list)  # "not read: why", one line each (the rest is read)
    inputs: dict = field(default_factory=dict)  # the sha256 of each input image our record names (png_record)
    checks: list = field(default_factory=list)  # png_checks.Check per file an A1111 PNG names: found/other/missing


def read_png_parameters(data: bytes | str | os.PathLike, presets: Presets | None = None) -> PngParameters:
    """Read a PNG's generation parameters; InputError when it is not a PNG or carries none we can read.

    Bounded for any file: its size and each text chunk are capped (png_text), JSON is size- and depth-checked
    (bounded_json), the A1111 text is parsed in linear time, and a ComfyUI walk visits each node once. Whatever
    cannot be read is one "not read" line in `problems` and the rest still reads."""
    raw = data if isinstance(data, bytes) else read_png_file(data)
    chunks, problems = text_chunks(raw, _CHUNKS)
    presets = presets or load_presets()
    if "sdxl_nb" in chunks:
        try:
            record = bounded_json.loads(chunks["sdxl_nb"], "the sdxl_nb record")
            if not isinstance(record, dict):
                raise InputError(f"the sdxl_nb record ({shown(record)} is not an object)")
        except InputError as exc:
            problems.append(f"not read: {one_line(exc)}")
        else:
            return _ours(record, chunks.get("parameters"), presets, problems)
    if "parameters" in chunks:
        return _a1111(chunks["parameters"], presets, problems)
    if "prompt" in chunks:
        try:
            return _comfy(chunks["prompt"], presets, problems)
        except InputError as exc:
            if not problems:
                raise
            raise InputError(f"{one_line(exc)}; {'; '.join(problems)}") from None
    raise InputError("this PNG has no generation parameters (no sdxl_nb record, A1111 'parameters' or ComfyUI "
                     "'prompt' chunk)" + "".join(f"; {line}" for line in problems))


# ---- ours ----
def _ours(record: dict, text: str | None, presets: Presets, problems: list[str]) -> PngParameters:
    reader = Reader()
    if record.get("mode") == "upscale":
        # An upscale job's image: what made the source (its A1111 parameters, kept as A1111's Extras keeps
        # them), with the upscale said; the record chunk is the upscale job's.
        found = _a1111(text, presets, []) if text else PngParameters("sdxl_nb", {}, {}, "")
        note = upscale_note(record, reader)
        return PngParameters("sdxl_nb", found.fields, {**found.unmapped, "upscale": note}, found.text, record,
                             problems + found.problems + reader.problems)
    fields, unmapped, inputs = record_fields(record, reader)
    return PngParameters("sdxl_nb", fields, unmapped, text or "", record, problems + reader.problems, inputs)


# ---- A1111 ----
def _a1111(text: str, presets: Presets, problems: list[str] | None = None) -> PngParameters:
    problems = list(problems or [])
    values = parse_parameters(text)
    fields: dict = {"prompt": values.pop("Prompt", ""), "negative_prompt": values.pop("Negative prompt", ""),
                    "style": raw_style(presets)}  # the text is the prompt as sent: no style on top of it
    unmapped: dict = {}

    def number(key: str, kind, default: str | None = None):
        raw = values.pop(key, default)
        if raw is None:
            return None
        try:
            return _whole(raw) if kind is int else _real(raw)
        except ValueError:
            problems.append(f"not read: {key} ({shown(raw)} is not {'a whole number' if kind is int else 'a number'})")
            return None

    fields.update(steps=number("Steps", int), cfg=number("CFG scale", float), seed=number("Seed", int))
    size = values.pop("Size", "")
    try:
        fields["width"], fields["height"] = (_whole(side) for side in size.lower().split("x"))
    except ValueError:
        if size:
            problems.append(f"not read: Size ({shown(size)} is not WIDTHxHEIGHT)")
    sampler, schedule = values.pop("Sampler", None), values.pop("Schedule type", None)
    if sampler:
        pair, why = sampler_pair_from_a1111(sampler, schedule, presets)
        if pair:
            fields["scheduler"] = pair[0]
            fields.update({"schedule_type": pair[1]} if pair[1] else {})
        else:
            unmapped["Sampler"] = f"{sampler}" + (f", {schedule}" if schedule else "") + f" ({why})"
    model = values.pop("Model", None)
    # The name picks the model; the Model hash is checked against its file, and a file with that hash wins.
    checked, check = model_check(model, values.get("Model hash"), model_id(model, presets) if model else None)
    checks = [check] if check else []
    if checked:
        fields["model"] = checked
        if check is not None and check.status != UNCHECKED:
            values.pop("Model hash")
    elif model:
        _note(unmapped, "Model", model)
    refiner = values.pop("Refiner", None)
    if refiner:
        name, _, short = refiner.partition(" [")  # "NAME [HASH]": the hash names the file, the name the model
        # a renamed single-file refiner is still found by its short hash, as a renamed base checkpoint is
        fields["refiner"] = (model_id(name, presets) or checkpoint_by_hash(short.rstrip("]") or None)
                             or _note(unmapped, "Refiner", refiner))
        fields["refiner_switch"] = number("Refiner switch at", float, "0.8")
        by_steps = values.pop("Refiner switch by sampling steps", None)  # A1111's apply_refiner writes True
        if by_steps is not None:
            fields["refiner_switch_by"] = "steps" if by_steps.strip().lower() == "true" else "timestep"
    hires_refiner = values.pop("Hires refiner", None)  # A1111 writes it when not its default "second pass"
    if hires_refiner:
        unmapped["Hires refiner"] = (f"{hires_refiner} (here a hires job's refiner runs in the second pass, A1111's "
                                     "default)")
    if "Hires upscale" in values or "Hires resize" in values:  # txt2img hires: Denoising strength is its pass's
        fields.update(hires_scale=number("Hires upscale", float), hires_upscaler=values.pop("Hires upscaler", None),
                      hires_steps=number("Hires steps", int), hires_denoise=number("Denoising strength", float),
                      hires_resize=_resize(values.pop("Hires resize", None), problems))
    from sdxl_nb.request.inpaint import read_a1111 as inpaint_fields

    fields.update(inpaint_fields(values, number))  # Mask blur, Masked content, Inpaint area, Masked area padding
    if "Denoising strength" in values:
        unmapped["Denoising strength"] = values.pop("Denoising strength") + " (img2img: the init image is not in the PNG)"
    checks += network_checks(fields["prompt"], values) + control_checks(values)
    unmapped.update({key: value for key, value in values.items() if key not in ("Version", "Style")})
    return PngParameters("A1111", {k: v for k, v in fields.items() if v is not None}, unmapped, text,
                         problems=problems, checks=checks)


def _resize(text: str | None, problems: list[str]) -> tuple[int, int] | None:
    """A1111's `Hires resize: WxH` (infotext_utils reads it as Hires resize-1 / -2), or None with a line."""
    from sdxl_nb.config.hires import parse_resize

    if text is None:
        return None
    try:
        return parse_resize(text)
    except InputError:
        problems.append(f"not read: Hires resize ({shown(text)} is not WIDTHxHEIGHT)")
        return None


def _whole(text: str) -> int:
    value = int(text)  # ValueError: not a whole number, or past int's digit limit
    if not is_whole(value):
        raise ValueError(text)
    return value


def _real(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "inf", "nan", "1e999"
        raise ValueError(text)
    return value


def scheduler_from_a1111(sampler: str, schedule: str | None, presets: Presets) -> str | None:
    """The scheduler preset A1111's (Sampler, Schedule type) names (its schedule type aside)."""
    pair, _why = sampler_pair_from_a1111(sampler, schedule, presets)
    return pair[0] if pair else None


# ---- ComfyUI ----
def _comfy(text: str, presets: Presets, problems: list[str] | None = None) -> PngParameters:
    problems = list(problems or [])
    graph = bounded_json.loads(text, "the PNG's ComfyUI 'prompt' chunk")
    if not isinstance(graph, dict):
        raise InputError("the PNG's ComfyUI 'prompt' chunk is not an API graph")
    samplers = sorted((key for key, node in graph.items() if _class(node) in SAMPLER_NODES), key=_node_order)
    if not samplers:
        raise InputError("the PNG's ComfyUI graph has no KSampler node to read the parameters from")
    inputs = _inputs(graph[samplers[0]], problems, f"node {shown(samplers[0])}")
    walks: list[_Walk] = []

    def walk() -> _Walk:
        walks.append(_Walk(graph))
        return walks[-1]

    fields: dict = {"style": raw_style(presets), "prompt": walk().text(inputs.get("positive")) or "",
                    "negative_prompt": walk().text(inputs.get("negative")) or ""}
    unmapped: dict = {}
    for key, name, kind in (("seed", "seed", int), ("noise_seed", "seed", int), ("steps", "steps", int),
                            ("cfg", "cfg", float)):
        value = _comfy_number(inputs.get(key), kind, key, problems)
        if value is not None:
            fields[name] = value
    pair = (inputs.get("sampler_name"), inputs.get("scheduler"))
    if all(isinstance(part, str) for part in pair):
        found, why = sampler_pair_from_comfy(pair[0], pair[1], presets)
        if found:
            fields["scheduler"] = found[0]
            fields.update({"schedule_type": found[1]} if found[1] else {})
        else:
            fields["scheduler"] = _note(unmapped, "sampler", f"{pair[0]} / {pair[1]} ({why})")
    latent = walk().follow(inputs.get("latent_image"), _LATENT_KEYS, lambda n: "width" in _inputs(n))
    if latent is not None:
        size = _inputs(latent)
        if is_whole(size.get("width")) and is_whole(size.get("height")):
            fields["width"], fields["height"] = size["width"], size["height"]
    if walk().follow(inputs.get("latent_image"), _LATENT_KEYS, lambda n: _class(n) == "VAEEncode") is not None:
        unmapped["latent"] = (f"img2img from an image (denoise {shown(inputs.get('denoise'))}); the init image is not "
                              "in the PNG")
    loader = walk().follow(inputs.get("model"), ("model",), lambda n: "ckpt_name" in _inputs(n))
    checkpoint = _checkpoint(loader, problems)
    if checkpoint is not None:
        fields["model"] = model_id(checkpoint, presets) or _note(unmapped, "checkpoint", checkpoint)
    _comfy_refiner(walk(), [graph[key] for key in samplers], loader, fields, unmapped, presets, problems)
    if any(w.cut for w in walks):
        problems.append(f"not read: part of the ComfyUI graph (a walk up it stops after {MAX_WALK:,} nodes)")
    return PngParameters("ComfyUI", {k: v for k, v in fields.items() if v is not None}, unmapped, text,
                         problems=problems)


def _comfy_refiner(walk: _Walk, samplers: list, base_loader, fields: dict, unmapped: dict, presets: Presets,
                   problems: list[str]) -> None:
    """A second sampler on another checkpoint, starting where the first stopped: the refiner and its switch."""
    if len(samplers) < 2:
        return
    second = _inputs(samplers[1])
    loader = walk.follow(second.get("model"), ("model",), lambda n: "ckpt_name" in _inputs(n))
    start, steps = second.get("start_at_step"), second.get("steps")
    if loader is None or loader is base_loader or not is_whole(start) or not is_whole(steps) or start < 0 or steps < 1:
        return
    checkpoint = _checkpoint(loader, problems)
    if checkpoint is None:
        return
    refiner = model_id(checkpoint, presets)
    if refiner is None:
        unmapped["refiner"] = f"{checkpoint} (not one of this lab's refiners)"
        return
    fields.update(refiner=refiner, refiner_switch=round(min(start, steps) / steps, 4))


def _checkpoint(loader: dict | None, problems: list[str]) -> str | None:
    if loader is None:
        return None
    name = _inputs(loader).get("ckpt_name")
    if isinstance(name, str):
        return name
    if not isinstance(name, list):  # a link to a primitive is ComfyUI's own; anything else is not a name
        problems.append(f"not read: the checkpoint name ({shown(name)} is not text)")
    return None


def _comfy_number(value, kind, key: str, problems: list[str]):
    """A sampler input as a number of its kind; a link (a list) is passed over, any other type is said."""
    if value is None or isinstance(value, list):
        return None
    if kind is float and is_number(value):
        return float(value)
    if kind is int and (is_whole(value) or (is_number(value) and float(value).is_integer())):
        return int(value)
    problems.append(f"not read: the sampler's {key} ({shown(value)} is not {'a whole number' if kind is int else 'a number'})")
    return None


def _class(node) -> str:
    kind = node.get("class_type") if isinstance(node, dict) else None
    return kind if isinstance(kind, str) else ""


def _inputs(node, problems: list[str] | None = None, name: str = "") -> dict:
    """A node's inputs, {} when it has none; inputs that are not an object are said (where `problems` is given)."""
    inputs = node.get("inputs") if isinstance(node, dict) else None
    if isinstance(inputs, dict):
        return inputs
    if inputs is not None and problems is not None:
        problems.append(f"not read: the inputs of {name} ({shown(inputs)} is not an object)")
    return {}


def _node_order(key: str) -> tuple:
    # numeric ids in numeric order, without int() on a key of any length (or a non-ASCII digit)
    return (0, len(key), key) if key.isascii() and key.isdigit() else (1, 0, key)


class _Walk:
    """One walk up a ComfyUI graph: each node entered once (a cycle ends), MAX_DEPTH links deep (no recursion
    past it), MAX_WALK nodes in all (`cut` then says the walk stopped)."""

    MAX_DEPTH = 64

    def __init__(self, graph: dict):
        self.graph, self.seen, self.cut = graph, set(), False

    def enter(self, link, depth: int) -> dict | None:
        if not (isinstance(link, list) and link and (isinstance(link[0], str) or is_whole(link[0]))):
            return None
        key = str(link[0])
        if key not in self.graph or key in self.seen or depth > self.MAX_DEPTH:
            return None
        if len(self.seen) >= MAX_WALK:
            self.cut = True
            return None
        self.seen.add(key)
        node = self.graph[key]
        return node if isinstance(node, dict) else None

    def text(self, link, depth: int = 0) -> str | None:
        """The text behind a conditioning link (through zero-outs, primitives and text nodes)."""
        node = self.enter(link, depth)
        if node is None:
            return None
        if _class(node) == "ConditioningZeroOut":
            return ""
        inputs = _inputs(node)
        for key in _TEXT_KEYS:
            value = inputs.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, list):
                found = self.text(value, depth + 1)
                if found is not None:
                    return found
        return None

    def follow(self, link, keys: tuple[str, ...], found, depth: int = 0) -> dict | None:
        """The first node upstream of `link` (through `keys` inputs) for which `found(node)` holds."""
        node = self.enter(link, depth)
        if node is None:
            return None
        if found(node):
            return node
        inputs = _inputs(node)
        for key in keys:
            hit = self.follow(inputs.get(key), keys, found, depth + 1)
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
    """The id of the single-file checkpoint whose A1111 Model hash (AutoV2 or short) this is, or None."""
    from sdxl_nb.config.checkpoints import checkpoint_with_hash

    found = checkpoint_with_hash(model_hash)
    return found.name if found else None


def _note(unmapped: dict, key: str, value: str) -> None:
    unmapped[key] = f"{value} (not one of this lab's models)" if key in ("Model", "checkpoint") else value
    return None
