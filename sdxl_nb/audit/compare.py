"""Compares a regenerated image with the saved one: bit-exact, close (with the numbers) or diverged."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# "close" = the same picture up to numerical noise (another GPU, kernel or library build):
# PSNR >= 40 dB is the usual line for visually indistinguishable 8-bit images, and the max-abs
# cap keeps a small region that changed completely (which barely moves PSNR) from passing.
CLOSE_MIN_PSNR_DB = 40.0
CLOSE_MAX_ABS_DIFF = 8
BIT_EXACT, CLOSE, DIVERGED, SKIPPED = "bit-exact", "close", "diverged", "skipped"


@dataclass(frozen=True)
class Comparison:
    verdict: str
    max_abs_diff: int | None
    psnr_db: float | None  # inf when bit-exact
    note: str = ""


def pixels(image) -> np.ndarray:
    """RGB uint8 pixels of a PIL image, a path, or an array."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    with Image.open(image) as opened:
        return np.asarray(opened.convert("RGB"))


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio of 8-bit images from their mean squared error (inf when equal)."""
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def compare_images(saved, regenerated, *, min_psnr_db: float = CLOSE_MIN_PSNR_DB,
                   max_abs_diff: int = CLOSE_MAX_ABS_DIFF) -> Comparison:
    """Bit-exact when every pixel is equal; close when PSNR >= min_psnr_db and no pixel differs by
    more than max_abs_diff; diverged otherwise (a different size is diverged too)."""
    a, b = pixels(saved), pixels(regenerated)
    if a.shape != b.shape:
        return Comparison(DIVERGED, None, None, f"size differs: saved {a.shape[1]}x{a.shape[0]}, "
                                                f"re-run {b.shape[1]}x{b.shape[0]}")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    largest = int(diff.max()) if diff.size else 0
    mse = float(np.mean(diff.astype(np.float64) ** 2)) if diff.size else 0.0
    value = psnr(mse)
    if largest == 0:
        return Comparison(BIT_EXACT, 0, value)
    verdict = CLOSE if value >= min_psnr_db and largest <= max_abs_diff else DIVERGED
    return Comparison(verdict, largest, round(value, 2))
