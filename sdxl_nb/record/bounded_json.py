"""JSON from a stranger's file (a PNG chunk, a received record): size and nesting capped before json.loads."""

from __future__ import annotations

import json
import re
from itertools import accumulate

from sdxl_nb.errors import InputError, one_line

MAX_JSON_CHARS = 1 << 20  # a PNG text chunk's cap: no record or graph of ours comes near it
MAX_JSON_DEPTH = 64  # our records nest 4 deep, ComfyUI graphs 4; Python's json recurses once per level
# A string (its closing quote optional, so an unclosed one ends the scan instead of being retried from every later
# quote) or a bracket: one left-to-right pass over the text.
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"?|([\[\]{}])', re.DOTALL)


def nesting_depth(text: str) -> int:
    """How deep [ and { nest in JSON text, strings skipped (linear in the text)."""
    brackets = "".join(_TOKEN.findall(text))
    if not brackets:
        return 0
    return max(0, max(accumulate(1 if c in "[{" else -1 for c in brackets)))


def loads(text: str | bytes, what: str, *, max_chars: int = MAX_JSON_CHARS, max_depth: int = MAX_JSON_DEPTH):
    """The value `text` holds; InputError (one line naming `what`) when it is too long, nests too deep or is
    not valid JSON. Nothing here recurses deeper than `max_depth`, so any text ends in a value or that line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{what} is not UTF-8 text") from None
    if len(text) > max_chars:
        raise InputError(f"{what} is {len(text):,} characters long; at most {max_chars:,} are read")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise InputError(f"{what} nests {depth} levels deep; at most {max_depth} are read")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or a number past int's digit limit
        raise InputError(f"{what} is not valid JSON ({one_line(exc)})") from None
