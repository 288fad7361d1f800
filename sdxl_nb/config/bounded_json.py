"""JSON from a stranger's file (a PNG chunk, a presets file, a safetensors header): every problem is one line."""

from __future__ import annotations

import json
import re
from itertools import accumulate

from sdxl_nb.errors import InputError

MAX_JSON_CHARS = 1 << 20  # a PNG text chunk's cap: no record or graph of ours comes near it
MAX_JSON_DEPTH = 64  # our records nest 4 deep, ComfyUI graphs 4, presets 3; Python's json recurses once per level
MAX_INT_DIGITS = 100  # no setting, seed or size needs more; Python's int() refuses past 4300 digits anyway
# A string (its closing quote optional, so an unclosed one ends the scan instead of being retried from every later
# quote) or a bracket: one left-to-right pass over the text.
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"?|([\[\]{}])', re.DOTALL)


def nesting_depth(text: str) -> int:
    """How deep [ and { nest in JSON text, strings skipped (linear in the text)."""
    brackets = "".join(_TOKEN.findall(text))
    if not brackets:
        return 0
    return max(0, max(accumulate(1 if c in "[{" else -1 for c in brackets)))


class _LongNumber(ValueError):
    pass


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _LongNumber(f"a number with {digits} digits; accepted: at most {MAX_INT_DIGITS} digits")
    return int(text)


def loads(text: str | bytes, what: str, *, max_chars: int = MAX_JSON_CHARS, max_depth: int | None = MAX_JSON_DEPTH):
    """The value `text` holds; InputError (one line, "WHAT: problem") when it is not UTF-8, too long, nests too deep,
    holds a number of more than MAX_INT_DIGITS digits or is not valid JSON.

    With `max_depth` the nesting is measured before parsing, so the value handed on is at most that deep (callers
    that walk it recursively rely on this); with None, json's own recursion guard is the bound (a hot path that
    only reads a flat value, such as a safetensors header, skips the extra pass).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{what}: not UTF-8 text (at byte {exc.start})") from None
    if len(text) > max_chars:
        raise InputError(f"{what}: {len(text):,} characters long; at most {max_chars:,} are read")
    if max_depth is not None:
        depth = nesting_depth(text)
        if depth > max_depth:
            raise InputError(f"{what}: nested {depth} levels deep; at most {max_depth} are read")
    try:
        return json.loads(text, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except _LongNumber as exc:
        raise InputError(f"{what}: {exc}") from None
    except RecursionError:  # json's reader recurses per level; the interpreter's guard stops it cleanly
        raise InputError(f"{what}: nested too deeply to read") from None
    except ValueError as exc:  # a float literal json cannot take
        raise InputError(f"{what}: invalid JSON ({str(exc).splitlines()[0][:120]})") from None
