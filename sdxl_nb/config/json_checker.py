"""Typed values read out of raw JSON (presets files), each problem a PresetError naming the file and key."""

from __future__ import annotations

import json
import math
from typing import Any

from sdxl_nb.errors import PresetError


class JsonChecker:
    """Reads typed values out of raw JSON, raising PresetError that names the file and key."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, problem: str) -> PresetError:
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
            raise self.fail(key, f"expected {expected}, got {json.dumps(value)}")
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
                raise self.fail(f"{key}[{index}]", f"duplicate name {name!r}")
            out[name] = item
        return out
