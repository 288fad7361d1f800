"""Scheduler configs in jobs.log: JSON-able and stable on the way in, float infinities back on the way out."""

from __future__ import annotations

import math

# JSON has no infinity, and a config's infinities matter (a scheduler rebuilt without them differs):
# they are stored as this text and turned back into floats when a config is used again.
INFINITIES = {"inf": math.inf, "-inf": -math.inf}


def encode_config(value):
    """A config (dicts, tuples, numpy scalars, infinities) as JSON values: keys sorted, "_"-keys dropped,
    infinities as "inf"/"-inf", anything else unknown as its text."""
    if isinstance(value, dict):
        # "_"-keys are diffusers bookkeeping (version, which values were defaults), not settings.
        return {str(k): encode_config(v) for k, v in sorted(value.items()) if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [encode_config(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy or torch scalar
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def decode_config(value):
    """A recorded config with "inf"/"-inf" text turned back into floats, at any depth (for from_config)."""
    if isinstance(value, dict):
        return {k: decode_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_config(v) for v in value]
    return INFINITIES[value] if isinstance(value, str) and value in INFINITIES else value
