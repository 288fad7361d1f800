"""How a record's values read in a description: numbers, sizes, paths, hashes, never "None" or a Python repr."""

from __future__ import annotations

import math

from sdxl_nb.record.png_record import is_number, is_whole

ELLIPSIS = "…"


def part(obj, key: str) -> dict:
    """A nested object of a record, {} when it is absent or not an object (a hostile PNG chunk)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def items(obj, key: str) -> list:
    """A list of a record, [] when it is absent or not a list."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def text(value) -> str | None:
    """Text worth showing (not empty), else None."""
    return value if isinstance(value, str) and value.strip() else None


def number(value) -> str | None:
    """A number as a person writes it (7.5, 3, 0.25), else None; a bool or NaN is not a number."""
    if not is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return str(value) if is_whole(value) else f"{value:g}"


def size(pair) -> str | None:
    """[width, height] as "WxH", else None."""
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(is_whole(side) for side in pair):
        return f"{pair[0]}x{pair[1]}"
    return None


def short_hash(value, length: int = 10) -> str | None:
    return value[:length] if isinstance(value, str) and value.strip() else None


def joined(parts, separator: str = " · ") -> str | None:
    """The parts that are there, joined; None when none is."""
    shown = [part for part in parts if part]
    return separator.join(shown) or None


def named(name, hash_value=None) -> str | None:
    """"NAME [HASH]" (the bare name without a hash), as A1111 shows a model file."""
    name = text(name)
    if name is None:
        return None
    short = short_hash(hash_value, 12)
    return f"{name} [{short}]" if short else name


def input_image(entry) -> str | None:
    """A recorded input image: its path and size (the file is kept under inputs/ by its sha256)."""
    path = text(entry.get("path")) if isinstance(entry, dict) else None
    if path is None:
        return None
    shown = size(entry.get("size"))
    return f"{path} ({shown})" if shown else path


def clip_words(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters at a word boundary, with an ellipsis when cut."""
    flat = " ".join(value.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:  # a very long word is cut inside rather than leaving almost nothing
        cut = cut[:space]
    return cut.rstrip(" ,;:·-") + ELLIPSIS


def seconds(value) -> str | None:
    return f"{value:.2f} s" if is_number(value) and math.isfinite(value) else None


def gib(value) -> str | None:
    return f"{value / 2**30:.2f} GiB" if is_whole(value) and value >= 0 else None


def generic(value, depth: int = 0) -> str | None:
    """Any JSON value as one readable line (extra fields a caller merged into the record): no braces, no quotes."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_number(value):
        return number(value)
    if depth > 3:
        return ELLIPSIS
    if isinstance(value, dict):
        return joined(f"{key} {shown}" for key, item in value.items()
                      if (shown := generic(item, depth + 1)) is not None)
    if isinstance(value, list):
        return joined((generic(item, depth + 1) for item in value), ", ")
    return None
