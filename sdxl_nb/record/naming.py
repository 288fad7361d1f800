"""File names for outputs: timestamps, safe ASCII slugs, never-overwriting paths."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

SLUG_MAX = 40


def slugify(text: str, max_length: int = SLUG_MAX) -> str:
    """Short lowercase ASCII slug of a prompt; only [a-z0-9-], so it can never leave its folder."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        # Cut at a word boundary when one is reasonably close, so slugs stay readable.
        slug = cut.rsplit("-", 1)[0] if "-" in cut[max_length // 2:] else cut
    return slug.strip("-") or "image"


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d-%H%M%S")


def image_name(moment: datetime, prompt: str, seed: int, index: int) -> str:
    """`YYYYMMDD-HHMMSS_<slug>_seed<seed>_<NN>.png`; NN counts from 01 within the job."""
    return f"{timestamp(moment)}_{slugify(prompt)}_seed{seed}_{index + 1:02d}.png"


def frame_name(moment: datetime, prompt: str, index: int) -> str:
    """`YYYYMMDD-HHMMSS_<slug>_frame_001.png` for animation frames."""
    return f"{timestamp(moment)}_{slugify(prompt)}_frame_{index + 1:03d}.png"


def alternative_name(name: str, attempt: int) -> str:
    """`a.png` -> `a-2.png`: used when a file of that name already exists (never overwritten)."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{attempt}.{ext}" if dot else f"{name}-{attempt}"
