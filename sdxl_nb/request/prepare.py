"""A request validated and resolved without running it: what would run, exactly (no torch, nothing written)."""

from __future__ import annotations

from dataclasses import replace

from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.registry import default_model_id, model_presets
from sdxl_nb.request.resolve import GenerationRequest, ResolvedRequest, resolve


def prepare(request: GenerationRequest, presets: Presets | None = None) -> ResolvedRequest:
    """Validate and resolve a request: the styled prompt, the effective negative, the size, steps and cfg used and
    where each default came from (`notes`). Bad input raises InputError."""
    presets = presets or load_presets()
    if request.model is None:
        request = replace(request, model=default_model_id(presets))
    return resolve(request, presets, model_presets(presets))
