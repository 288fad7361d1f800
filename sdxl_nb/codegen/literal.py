"""Python source for recorded values: numbers (infinities too), text, paths, containers, dataclasses as namespaces."""

from __future__ import annotations

import dataclasses
import math
from pathlib import PurePath


def literal(value) -> str:
    """Source that evaluates to `value` (a dataclass: a SimpleNamespace of its fields and properties); other objects
    are refused (TypeError)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, (list, tuple)):
        items = ", ".join(literal(item) for item in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Data, not code: its fields and the values of its properties as the engine computes them now.
        names = [f.name for f in dataclasses.fields(value)]
        names += [name for name in dir(type(value)) if isinstance(getattr(type(value), name), property)]
        items = ", ".join(f"{name}={literal(getattr(value, name))}" for name in names)
        return f"SimpleNamespace({items})"
    raise TypeError(f"no source for a recorded {type(value).__name__}")
