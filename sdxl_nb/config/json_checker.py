"""Typed values read out of raw JSON (presets files), each problem a PresetError naming the file and key."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sdxl_nb.config import bounded_json
from sdxl_nb.errors import InputError, PresetError

MAX_JSON_BYTES = 5 * 1024 * 1024  # a presets file is a few KB; a bigger one is refused before it is read
SHOWN_CHARS = 60  # how much of a value from the file a message quotes, so one line stays one readable line


def shown(value: Any, *, as_json: bool = False) -> str:
    """`value` quoted on one line (a string as repr unless `as_json`, anything else as JSON), cut to SHOWN_CHARS: a
    message names what the file held without echoing a huge value."""
    if isinstance(value, str) and not as_json:
        text = repr(value[:SHOWN_CHARS])
    else:
        try:
            text = json.dumps(value, allow_nan=True)
        except (TypeError, ValueError, RecursionError):  # a value nested deeper than the encoder goes
            text = type(value).__name__
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def read_json_file(path: str | Path, what: str) -> Any:
    """The JSON value of a presets file; any problem (missing, unreadable, too big, not UTF-8, invalid JSON, nested
    too deep, a number too long) is one PresetError line naming the file, never another exception."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise PresetError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read {what} ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_JSON_BYTES:
        raise PresetError(f"{path}: {what} is over {MAX_JSON_BYTES // (1024 * 1024)} MB; accepted: a smaller file")
    try:
        # json's own recursion guard bounds the depth: the checker below reads known keys, never walks the value
        return bounded_json.loads(data, str(path), max_chars=MAX_JSON_BYTES, max_depth=None)
    except InputError as exc:
        raise PresetError(str(exc)) from None


class JsonChecker:
    """Reads typed values out of raw JSON, raising PresetError that names the file and key."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, problem: str) -> PresetError:
        # Keys may come from the file (an unknown key): quoted short and on one line like any value.
        key = key if len(key) <= SHOWN_CHARS and key.isprintable() else shown(key)
        return PresetError(f"{self.path}: {key}: {problem}")

    def entry(self, raw: Any, key: str, required: dict, optional: dict) -> dict:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected an object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(required) - set(optional))
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", f"unknown key; accepted: {', '.join(sorted({**required, **optional}))}")
        values = {}
        for name, kind in required.items():
            if name not in raw:
                raise self.fail(f"{key}.{name}", "missing")
            values[name] = self.typed(raw[name], f"{key}.{name}", kind)
        for name, kind in optional.items():
            if raw.get(name) is not None:
                values[name] = self.typed(raw[name], f"{key}.{name}", kind)
        return values

    def typed(self, value: Any, key: str, kind: str) -> Any:
        ok = {
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            # Python's JSON reader takes NaN and Infinity; no setting means either.
            "float": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
            "dict": isinstance(value, dict),
            "pair_str": isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value),
            "pair_int": isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
        }[kind]
        if not ok:
            expected = {"pair_str": "a list of two strings", "pair_int": "a list of two integers",
                        "float": "a finite number"}.get(kind, kind)
            raise self.fail(key, f"expected {expected}, got {shown(value, as_json=True)}")
        if kind == "float":
            return float(value)
        if kind.startswith("pair"):
            return tuple(value)
        return value

    def named(self, items: Any, key: str, build) -> dict:
        if not isinstance(items, list) or not items:
            raise self.fail(key, "expected a non-empty list")
        out: dict = {}
        for index, raw in enumerate(items):
            item = build(raw, f"{key}[{index}]")
            name = getattr(item, "name", None) or item.id
            if name in out:
                raise self.fail(f"{key}[{index}]", f"duplicate name {shown(name)}")
            out[name] = item
        return out
