"""Inpaint masks from brush strokes: strokes -> mask image (white = repaint), invert, feather, kept under inputs/."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

MAX_FEATHER = 64  # px of blur at most; more would wash the mask out


@dataclass(frozen=True)
class Stroke:
    """One press-drag-release of the brush, in the init image's pixels."""

    points: tuple[tuple[float, float], ...]
    radius: float
    erase: bool = False  # the eraser takes paint away


@dataclass
class MaskPaint:
    """What a mask is made of: a base (an uploaded mask, or nothing), the strokes on top, then invert and feather."""

    size: tuple[int, int]  # the init image's (width, height)
    strokes: list[Stroke] = field(default_factory=list)
    base: object = None  # a PIL "L" image of `size`, or None for an empty (keep everything) start
    inverted: bool = False  # paint marks what to keep; the rest is repainted
    feather: int = 0  # Gaussian blur radius in px: a soft edge blends the repainted area in

    def render(self):
        """The mask as a PIL "L" image of the init image's size: 255 = repaint, 0 = keep."""
        from PIL import Image, ImageDraw, ImageFilter, ImageOps

        if not 0 <= self.feather <= MAX_FEATHER:
            from sdxl_nb.errors import InputError

            raise InputError(f"feather {self.feather} is out of range; accepted: 0 to {MAX_FEATHER} px")
        mask = self.base.copy() if self.base is not None else Image.new("L", self.size, 0)
        draw = ImageDraw.Draw(mask)
        for stroke in self.strokes:
            fill = 0 if stroke.erase else 255
            r = stroke.radius
            points = [(round(x), round(y)) for x, y in stroke.points]
            if len(points) > 1:
                draw.line(points, fill=fill, width=max(1, round(2 * r)), joint="curve")
            for x, y in points:  # round ends and joints
                draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        if self.inverted:
            mask = ImageOps.invert(mask)
        if self.feather:
            mask = mask.filter(ImageFilter.GaussianBlur(self.feather))
        return mask

    @property
    def blank(self) -> bool:
        """Nothing painted, nothing uploaded, nothing changed: no mask to use."""
        return self.base is None and not self.strokes and not self.inverted

    def untouched_base(self) -> bool:
        """An uploaded mask used as it is (its own bytes are then what is kept and recorded)."""
        return self.base is not None and not self.strokes and not self.inverted and not self.feather


def load_base(data: bytes, size: tuple[int, int]):
    """An uploaded mask as a painting base: grey ("L"), at the init image's size (white = repaint). Bytes that
    are not an image within the input budget (a decompression bomb) are an InputError, never decoded."""
    from PIL import Image

    from sdxl_nb.request.resolve import decode_image

    decode_image(data, "mask image", "L")
    with Image.open(io.BytesIO(data)) as image:
        grey = image.convert("L")
    return grey if grey.size == tuple(size) else grey.resize(tuple(size), Image.Resampling.NEAREST)


def coverage(mask) -> float:
    """The share of the image the mask repaints (partly-white pixels count by their weight)."""
    histogram = mask.histogram()
    total = sum(histogram) or 1
    return sum(level * count for level, count in enumerate(histogram)) / (255 * total)


def mask_png(mask) -> bytes:
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def save_mask(mask, out_dir: str | os.PathLike) -> Path:
    """Keep a painted mask under <out_dir>/inputs/<sha256>.png, as an uploaded one is kept (same mask, same file)."""
    from sdxl_nb.request.form import save_upload

    return save_upload(mask_png(mask), out_dir, "painted mask")
