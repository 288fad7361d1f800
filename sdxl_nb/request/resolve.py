"""GenerationRequest -> validated ResolvedRequest: style applied, defaults filled, per-image seeds; no torch."""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sdxl_nb.config.embeddings import EmbeddingUse
from sdxl_nb.config.hires import HiresFix, resolve_hires
from sdxl_nb.config.input_image import InputImage
from sdxl_nb.config.ip_adapters import IpAdapterUse
from sdxl_nb.config.limits import (
    MAX_BATCH,
    MAX_CFG,
    MAX_INPUT_BYTES,
    MAX_INPUT_PIXELS,
    MAX_SEED,
    MAX_SIZE,
    MAX_STEPS,
    MIN_SIZE,
    check_int,
    check_number,
    strength_steps,
)
from sdxl_nb.config.loras import LoraUse
from sdxl_nb.config.presets import ModelPreset, Presets, SchedulerPreset, StylePreset
from sdxl_nb.errors import InputError
from sdxl_nb.request.prompt_syntax import check_weights
from sdxl_nb.request.refiner_choice import resolve_refiner

__all__ = ["MAX_BATCH", "MAX_CFG", "MAX_SEED", "MAX_SIZE", "MAX_STEPS", "MIN_SIZE", "GenerationRequest", "InputImage",
           "ResolvedRequest", "check_int", "check_number", "check_text", "read_input_image", "resolve"]
MODES = ("txt2img", "img2img", "inpaint")


@dataclass
class GenerationRequest:
    """What a user asks for. None means "use the style's, then the model's, then the lab's default"."""

    prompt: str
    negative_prompt: str = ""
    model: str | None = None
    scheduler: str | None = None
    # A1111's "Schedule type" (or ComfyUI's scheduler name) for the sampler: Karras, Exponential, SGM Uniform...
    schedule_type: str | None = None
    style: str | None = None
    steps: int | None = None
    cfg: float | None = None
    width: int | None = None
    height: int | None = None
    resolution: str | None = None  # a presets.json resolution name, instead of width/height
    batch: int = 1
    seed: int | None = None  # None: a random seed is drawn and recorded
    init_image: str | None = None  # path; img2img when set, inpaint when mask_image is set too
    mask_image: str | None = None
    strength: float | None = None  # img2img/inpaint denoising strength, 0 < strength <= 1
    # LoRAs besides the prompt's <lora:NAME:WEIGHT> tags: [("NAME", 0.8)] or ["NAME:0.8"]; all three mean the same.
    loras: list | None = None
    refiner: str | None = None  # a refiner model id: it finishes the job's last steps from `refiner_switch` on
    refiner_switch: float | None = None  # fraction of the schedule the base runs, 0 < switch <= 1 (default 0.8)
    # How the switch is read (A1111): "timestep" (default: a point on the model's timesteps) or "steps" (a fraction of
    # the sampling steps: A1111's `Refiner switch by sampling steps`). With a hires fix the refiner runs in its pass.
    refiner_switch_by: str | None = None
    # Hires fix (txt2img): upscale the first pass by hires_scale, then an img2img pass of hires_steps steps at
    # hires_denoise; hires_upscaler: "Latent" (default), "Latent (nearest-exact)", "Lanczos" or a model's name.
    hires_scale: float | None = None
    hires_steps: int | None = None
    hires_denoise: float | None = None
    hires_upscaler: str | None = None
    # A1111's "Resize width/height to" instead of hires_scale: (width, height) or "WxH"; a 0 keeps the aspect ratio.
    hires_resize: tuple | str | None = None
    ip_adapter: str | None = None  # an IP-Adapter name (see `sdxl-nb ip-adapters`): images as part of the prompt
    ip_images: list | None = None  # its image paths (one or several)
    ip_scale: float | None = None  # its weight, 0 (no effect) to 2; default 1
    # ControlNet units: [{"model": NAME, "image": PATH, "preprocessor": "canny"|"none", "weight": 1.0, "start": 0.0,
    # "end": 1.0, "low_threshold": 100, "high_threshold": 200}] (request/control.py); one dict means one unit.
    controlnets: list | None = None
    # Inpaint as A1111 does it (request/inpaint.py); None: A1111's default. Only with a mask image.
    mask_blur: int | None = None  # px, 0 to 64 (default 4): the mask's Gaussian blur before use and paste-back
    masked_content: str | None = None  # "original" (default), "fill", "latent noise" or "latent nothing"
    inpaint_area: str | None = None  # "Whole picture" (default) or "Only masked" (a padded crop, scaled to the size)
    only_masked_padding: int | None = None  # px, 0 to 256 (default 32) around the mask for "Only masked"


@dataclass(frozen=True)
class ResolvedRequest:
    """Everything the engine needs, concrete and validated; `notes` say where each default came from."""

    mode: str
    model: ModelPreset
    scheduler: SchedulerPreset
    style: StylePreset
    prompt: str
    negative_prompt: str
    styled_prompt: str
    effective_negative_prompt: str
    steps: int
    cfg: float
    width: int
    height: int
    batch: int
    seed: int
    seeds: tuple[int, ...]
    strength: float | None
    init_image: InputImage | None
    mask_image: InputImage | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    loras: tuple[LoraUse, ...] = ()  # every LoRA of the job (prompt tags and the request's list), in order
    embeddings: tuple[EmbeddingUse, ...] = ()  # textual-inversion embeddings named in the prompts
    refiner: ModelPreset | None = None  # the refiner that takes over at refiner_switch (None: the base alone)
    refiner_switch: float | None = None  # set exactly when refiner is
    refiner_switch_by: str | None = None  # "timestep" or "steps" (refiner_choice.py), set exactly when refiner is
    hires: HiresFix | None = None  # the second, upscaled pass (width and height stay the first pass's size)
    ip_adapter: IpAdapterUse | None = None  # the IP-Adapter, its images and scale
    controlnets: tuple = ()  # ControlUnit of each ControlNet, in order (request/control.py)
    warnings: tuple[str, ...] = ()  # for the job's record: model file names it uses that several files share
    inpaint: object = None  # inpaint.InpaintSettings of an inpaint job (None: other modes, and older records)
    schedule_type: str = "Automatic"  # A1111's label; `scheduler` already carries its diffusers options

    @property
    def output_size(self) -> tuple[int, int]:
        """The saved images' size: the hires pass's when there is one."""
        return (self.hires.width, self.hires.height) if self.hires else (self.width, self.height)

    @property
    def init_resized(self) -> bool:
        return self.init_image is not None and self.init_image.size != (self.width, self.height)


def _fail(message: str) -> InputError:
    return InputError(message)


def check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{name} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(f"{name} is not valid UTF-8 text") from None
    bad = sorted({f"U+{ord(c):04X}" for c in value if (ord(c) < 32 and c not in "\n\t\r") or ord(c) == 127})
    if bad:
        raise _fail(f"{name} contains control characters ({', '.join(bad)}); accepted: printable text, tabs, newlines")
    return value


def _pick(table: dict, name: str, kind: str, why: str | None = None):
    if name not in table:
        raise _fail(f"unknown {kind} {name!r}; accepted: {', '.join(table)}" + (f"; {why}" if why else ""))
    return table[name]


def _check_size(width: object, height: object, source: str) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(f"{name} must be a whole number, got {value!r}")
        if value <= 0 or value % 8:
            raise _fail(f"{name} {value}{source} must be a positive multiple of 8 (e.g. {_nearest_sizes(value)}); "
                        f"accepted: {MIN_SIZE} to {MAX_SIZE}")
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise _fail(f"{name} {value}{source} is out of range; accepted: multiples of 8 from {MIN_SIZE} to {MAX_SIZE}")
    return width, height


def _nearest_sizes(value: int) -> str:
    """The accepted sizes around a rejected one: '96 or 104', or one size at either end of the range."""
    near = sorted({min(MAX_SIZE, max(MIN_SIZE, side)) for side in (value // 8 * 8, value // 8 * 8 + 8)})
    return " or ".join(map(str, near))


def read_input_image(path: str | None, name: str, *, mode: str = "RGB") -> InputImage | None:
    """Check that an init/mask image exists and decodes within the pixel budget; return its hash and size.

    The size is read from the header first: an image above MAX_INPUT_PIXELS (a decompression bomb declares
    30000 x 30000) is refused before any pixel is decoded. Then it is decoded whole and converted to `mode`,
    as the run will, so an image that passes here cannot fail there.
    """
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise _fail(f"{name} must be a file path, got {type(path).__name__}")
    file, shown = Path(path), show_path(path)
    try:
        if not file.is_file():
            raise _fail(f"{name} {shown} does not exist or is not a file")
        if file.stat().st_size > MAX_INPUT_BYTES:
            raise _fail(f"{name} {shown} is {file.stat().st_size / 2**20:.0f} MiB; accepted: at most "
                        f"{MAX_INPUT_BYTES // 2**20} MiB")
        data = file.read_bytes()
    except InputError:
        raise
    except PermissionError:
        raise _fail(f"{name} {shown} is not readable (permission denied)") from None
    except (OSError, ValueError) as exc:  # a path too long, a NUL byte in it, an I/O error
        raise _fail(f"{name} {shown} cannot be read ({type(exc).__name__})") from None
    size = decode_image(data, f"{name} {shown}", mode)
    return InputImage(path=str(file.resolve()), sha256=hashlib.sha256(data).hexdigest(), size=size)


def show_path(path: object, limit: int = 120) -> str:
    """A path as messages quote it: repr (a newline stays on the line), long ones cut in the middle."""
    text = repr(str(path))
    return text if len(text) <= limit else text[: limit // 2 - 2] + "..." + text[-(limit // 2 - 1):]


def decode_image(data: bytes, label: str, mode: str = "RGB") -> tuple[int, int]:
    """(width, height) of image bytes that decode whole within MAX_INPUT_PIXELS and convert to `mode`;
    InputError otherwise. Never decodes a bomb: the header's size is checked before the pixels."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    accepted = "accepted: PNG, JPEG, WebP..."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_INPUT_PIXELS:
                    raise _fail(f"{label} is {width}x{height} ({width * height / 1e6:.0f} megapixels); accepted: at "
                                f"most {MAX_INPUT_PIXELS / 1e6:.0f} megapixels")
                if width < 1 or height < 1:
                    raise _fail(f"{label} is {width}x{height}; it has no pixels")
                image.load()
                image.convert(mode)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _fail(f"{label} declares more pixels than Pillow accepts (a decompression bomb); accepted: at most "
                    f"{MAX_INPUT_PIXELS / 1e6:.0f} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise _fail(f"{label} is not a readable image ({type(exc).__name__}); {accepted}") from None
    return width, height


def resolve(request: GenerationRequest, presets: Presets, models: dict[str, ModelPreset] | None = None) -> ResolvedRequest:
    """Validate a request before any work and fill in every default; raise InputError on bad input."""
    models = models if models is not None else presets.models
    d = presets.defaults
    notes: list[str] = []
    prompt = check_text(request.prompt, "prompt")
    negative = check_text(request.negative_prompt or "", "negative prompt")

    bases = {name: preset for name, preset in models.items() if not preset.refiner}
    if (request.model or d.model) in models and (request.model or d.model) not in bases:
        raise _fail(f"model {request.model!r} is a refiner: it finishes another model's job (refiner="
                    f"{request.model!r}); accepted models: {', '.join(bases)}")
    model = _pick(bases, request.model or d.model, "model")
    style = _pick(presets.styles, request.style or d.style, "style", presets.user_error)
    from sdxl_nb.request.sampler_choice import resolve_scheduler

    scheduler, schedule_type = resolve_scheduler(request, presets, model, style, notes)

    if request.steps is not None:
        steps = check_int(request.steps, "steps", 1, MAX_STEPS)
    elif style.steps is not None and not model.turbo:
        steps = style.steps
        notes.append(f"steps {steps} from style {style.name}")
    else:
        steps = model.steps
        notes.append(f"steps {steps} from model {model.id}")
    if request.cfg is not None:
        cfg = check_number(request.cfg, "cfg")
        if not 0 <= cfg <= MAX_CFG:
            raise _fail(f"cfg {request.cfg} is out of range; accepted: 0 to {MAX_CFG:g}")
    elif style.cfg is not None and not model.turbo:
        cfg = style.cfg
        notes.append(f"cfg {cfg:g} from style {style.name}")
    else:
        cfg = model.cfg
        notes.append(f"cfg {cfg:g} from model {model.id}")
    batch = check_int(request.batch, "batch", 1, MAX_BATCH)

    init = read_input_image(request.init_image, "init image")
    mask = read_input_image(request.mask_image, "mask image", mode="L")
    if mask and not init:
        raise _fail("a mask image needs an init image (inpaint takes both)")
    mode = "inpaint" if mask else "img2img" if init else "txt2img"
    if mask and mask.size != init.size:
        raise _fail(f"mask image is {mask.size[0]}x{mask.size[1]} but the init image is {init.size[0]}x{init.size[1]}; they must match")
    if mode == "txt2img":
        if request.strength is not None:
            raise _fail("strength applies only to img2img and inpaint (give an init image)")
        strength = None
    else:
        strength = d.strength if request.strength is None else check_number(request.strength, "strength")
        if not 0 < strength <= 1:
            raise _fail(f"strength {request.strength} is out of range; accepted: greater than 0, at most 1")
        if request.strength is None:
            notes.append(f"strength {strength:g} (lab default)")
        if strength_steps(steps, strength) < 1:
            # diffusers would start past the end of its schedule and fail inside the pipeline.
            raise _fail(f"steps {steps} x strength {strength:g} leaves no denoising step (img2img and inpaint run "
                        f"int(steps x strength) = {strength_steps(steps, strength)} steps); accepted: steps x strength "
                        f"of at least 1, e.g. {_enough_denoising(steps, strength)}")

    width, height = _resolve_size(request, presets, model, init, notes)
    hires = resolve_hires(request.hires_scale, request.hires_steps, request.hires_denoise, request.hires_upscaler,
                          mode=mode, width=width, height=height, base_steps=steps, resize=request.hires_resize)
    refiner, switch, switch_by = resolve_refiner(request, models, mode, strength, hires, notes)

    if request.seed is None:
        seed = secrets.randbelow(MAX_SEED - batch + 2)
        notes.append(f"seed {seed} drawn at random")
    else:
        seed = check_int(request.seed, "seed", 0, MAX_SEED - batch + 1)
    styled, effective_negative = style.apply(prompt, negative)
    check_weights(styled, "prompt")  # the text CLIP reads (the style's words included), parsed as the encoder will
    check_weights(effective_negative, "negative prompt")
    from sdxl_nb.request.control import resolve_controlnets
    from sdxl_nb.request.ip_adapter import resolve_ip_adapter
    from sdxl_nb.request.name_clashes import clash_warnings
    from sdxl_nb.request.networks import resolve_embeddings, resolve_loras

    ip_adapter = resolve_ip_adapter(request.ip_adapter, request.ip_images, request.ip_scale, notes,
                                    read_input_image)
    loras = resolve_loras(styled, effective_negative, request.loras)
    embeddings = resolve_embeddings(styled, effective_negative)
    controlnets = resolve_controlnets(request.controlnets, read_input_image)
    inpaint = _resolve_inpaint(request, mode, mask, controlnets)

    return ResolvedRequest(
        mode=mode, model=model, scheduler=scheduler, style=style, prompt=prompt, negative_prompt=negative,
        styled_prompt=styled, effective_negative_prompt=effective_negative, steps=steps, cfg=cfg,
        width=width, height=height, batch=batch, seed=seed, seeds=tuple(seed + i for i in range(batch)),
        strength=strength, init_image=init, mask_image=mask, notes=tuple(notes),
        loras=loras, embeddings=embeddings, hires=hires, refiner=refiner, refiner_switch=switch,
        ip_adapter=ip_adapter, controlnets=controlnets, inpaint=inpaint,
        schedule_type=schedule_type, refiner_switch_by=switch_by,
        warnings=clash_warnings(loras=loras, embeddings=embeddings, hires=hires, ip_adapter=ip_adapter,
                                controlnets=controlnets),
    )


def _resolve_inpaint(request: GenerationRequest, mode: str, mask: InputImage | None, controlnets: tuple):
    from sdxl_nb.request.inpaint import check_mask_area, check_with_controlnets, resolve_inpaint

    inpaint = resolve_inpaint(mode, request.mask_blur, request.masked_content, request.inpaint_area,
                              request.only_masked_padding)
    check_with_controlnets(inpaint, bool(controlnets))
    check_mask_area(inpaint, mask.path if mask else None)
    return inpaint


def _enough_denoising(steps: int, strength: float) -> str:
    """'steps N or strength S': the nearest settings that leave at least one denoising step."""
    more_steps = math.ceil(1 / strength)
    while strength_steps(more_steps, strength) < 1:  # float products such as 3 x 0.333333 fall short of 1
        more_steps += 1
    more_strength = math.ceil(1000 / steps) / 1000
    options = [f"steps {more_steps}"] if more_steps <= MAX_STEPS else []
    if more_strength <= 1:
        options.append(f"strength {more_strength:g}")
    return " or ".join(options) or "strength 1"


def _resolve_size(request: GenerationRequest, presets: Presets, model: ModelPreset, init: InputImage | None,
                  notes: list[str]) -> tuple[int, int]:
    if request.resolution is not None and (request.width is not None or request.height is not None):
        raise _fail("give either a resolution name or width and height, not both")
    if (request.width is None) != (request.height is None):
        raise _fail("give both width and height (or neither)")
    if request.resolution is not None:
        res = _pick(presets.resolutions, request.resolution, "resolution")
        return res.width, res.height
    if request.width is not None:
        size = _check_size(request.width, request.height, "")
        if init and init.size != size:
            notes.append(f"init image resized from {init.size[0]}x{init.size[1]} to {size[0]}x{size[1]}")
        return size
    if init:
        return _check_size(init.size[0], init.size[1], " of the init image (or pass width and height to resize it)")
    if model.native_size:
        notes.append(f"size {model.native_size[0]}x{model.native_size[1]} native to model {model.id}")
        return model.native_size
    res = presets.resolutions[presets.defaults.resolution]
    notes.append(f"size {res.width}x{res.height} (lab default resolution)")
    return res.width, res.height
