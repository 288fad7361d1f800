"""A1111's inpaint settings (mask blur, masked content, inpaint area, padding): validated, recorded, in its infotext."""

from __future__ import annotations

from dataclasses import dataclass

from sdxl_nb.errors import InputError

# A1111's `inpainting_fill` 0..3, in its order (modules/ui.py "Masked content" radio).
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
INPAINT_AREAS = ("Whole picture", "Only masked")  # A1111's `inpaint_full_res` False / True
DEFAULT_MASK_BLUR, MAX_MASK_BLUR = 4, 64  # A1111's default "Mask blur" and its slider's end
DEFAULT_PADDING, MAX_PADDING = 32, 256  # A1111's "Only masked padding, pixels" default and slider's end
FIELDS = ("mask_blur", "masked_content", "inpaint_area", "only_masked_padding")  # GenerationRequest's names


@dataclass(frozen=True)
class InpaintSettings:
    """How an inpaint job treats its mask, as A1111's img2img inpaint tab does."""

    mask_blur: int = DEFAULT_MASK_BLUR
    masked_content: str = "original"
    inpaint_area: str = "Whole picture"
    padding: int = DEFAULT_PADDING

    @property
    def only_masked(self) -> bool:
        return self.inpaint_area == "Only masked"

    @property
    def fill_index(self) -> int:
        """A1111's `inpainting_fill` number."""
        return MASKED_CONTENT.index(self.masked_content)

    def record(self) -> dict:
        # overlay: the original is pasted back outside the blurred mask (A1111 always does it)
        return {"mask_blur": self.mask_blur, "masked_content": self.masked_content,
                "inpaint_area": self.inpaint_area, "only_masked_padding": self.padding, "overlay": True}


def _whole(value: object, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number of pixels, got {value!r}; accepted: 0 to {high}")
    if not 0 <= value <= high:
        raise InputError(f"{name} {value} is out of range; accepted: 0 to {high} pixels")
    return value


def _choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; accepted: {', '.join(choices)}")
    return value


def resolve_inpaint(mode: str, mask_blur=None, masked_content=None, inpaint_area=None,
                    only_masked_padding=None) -> InpaintSettings | None:
    """The settings of an inpaint job (defaults: A1111's); None for other modes, where giving any is refused."""
    given = [name for name, value in zip(FIELDS, (mask_blur, masked_content, inpaint_area, only_masked_padding),
                                         strict=True) if value is not None]
    if mode != "inpaint":
        if given:
            raise InputError(f"{given[0].replace('_', ' ')} applies only to inpaint (give an init image and a mask)")
        return None
    blur = DEFAULT_MASK_BLUR if mask_blur is None else _whole(mask_blur, "mask blur", MAX_MASK_BLUR)
    content = "original" if masked_content is None else _choice(masked_content, "masked content", MASKED_CONTENT)
    area = "Whole picture" if inpaint_area is None else _choice(inpaint_area, "inpaint area", INPAINT_AREAS)
    padding = DEFAULT_PADDING if only_masked_padding is None else _whole(only_masked_padding, "only masked padding",
                                                                          MAX_PADDING)
    return InpaintSettings(blur, content, area, padding)


def check_with_controlnets(settings: InpaintSettings | None, controlnets: bool) -> None:
    """The latent masked contents need the plain inpaint pipeline: with ControlNet units it is refused (one line)."""
    if settings is not None and controlnets and settings.masked_content in ("latent noise", "latent nothing"):
        raise InputError(f"masked content {settings.masked_content!r} cannot run with ControlNet units (the "
                         "ControlNet inpaint pipeline takes pixels only); accepted with ControlNet: original, fill")


def check_mask_area(settings: InpaintSettings | None, mask_path: str) -> None:
    """"Only masked" needs painted pixels: A1111 falls back to img2img on a blank mask; here it is refused."""
    if settings is None or not settings.only_masked:
        return
    from PIL import Image

    from sdxl_nb.request.inpaint_image import blurred_mask, crop_region

    with Image.open(mask_path) as image:
        mask = image.convert("L")
    if crop_region(blurred_mask(mask, settings.mask_blur), settings.padding) is None:
        raise InputError("the mask is blank, so 'Only masked' has no area to inpaint; accepted: a mask with painted "
                         "pixels, or inpaint area 'Whole picture'")


def recorded_inpaint(record: dict) -> InpaintSettings | None:
    """The settings an inpaint record ran with; None for records from before they existed (no overlay then)."""
    entry = record.get("inpaint")
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise InputError(f"the record's inpaint {entry!r} is not an object")
    return resolve_inpaint("inpaint", entry.get("mask_blur"), entry.get("masked_content"), entry.get("inpaint_area"),
                           entry.get("only_masked_padding"))


def a1111_fields(record: dict) -> dict:
    """A1111's infotext fields for an inpaint record, written when A1111 writes them (processing.py
    StableDiffusionProcessingImg2Img.init, 1.8+): `Mask blur` when above 0, `Masked content` except for original,
    `Inpaint area: Only masked` and `Masked area padding` only in that mode."""
    entry = record.get("inpaint")
    if not isinstance(entry, dict):
        return {}
    only_masked = entry.get("inpaint_area") == "Only masked"
    return {"Mask blur": entry.get("mask_blur") or None,
            "Masked content": None if entry.get("masked_content") == "original" else entry.get("masked_content"),
            "Inpaint area": "Only masked" if only_masked else None,
            "Masked area padding": entry.get("only_masked_padding") if only_masked else None}


# A1111 infotext key -> request field; "Only masked padding, pixels" is the UI label some tools write instead.
A1111_KEYS = {"Mask blur": "mask_blur", "Masked content": "masked_content", "Inpaint area": "inpaint_area",
              "Masked area padding": "only_masked_padding", "Only masked padding, pixels": "only_masked_padding"}


def read_a1111(values: dict, number) -> dict:
    """Request fields from A1111's inpaint keys (popped from `values`); `number(key, int)` reads a whole number.
    A PNG that names an inpaint area but no masked content ran with A1111's "original" (it writes no field for it)."""
    fields = {}
    for key, name in A1111_KEYS.items():
        if key not in values:
            continue
        fields[name] = number(key, int) if name in ("mask_blur", "only_masked_padding") else values.pop(key)
    if fields and "masked_content" not in fields:
        fields["masked_content"] = "original"
    if "mask_blur" not in fields and fields:
        fields["mask_blur"] = 0  # A1111 1.8+ writes Mask blur whenever it is above 0
    return {key: value for key, value in fields.items() if value is not None}
