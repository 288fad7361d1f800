"""Engine options from a presets profile (default: the presets' default profile) with keyword overrides; no torch."""

from __future__ import annotations

from dataclasses import asdict

from sdxl_nb.config.options import EngineOptions, options_from_dict
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.errors import InputError


def engine_options(profile: str | None = None, presets: Presets | None = None, **options) -> EngineOptions:
    """EngineOptions of a presets profile, with keyword overrides (e.g. fuse_qkv=True)."""
    presets = presets or load_presets()
    name = profile or presets.defaults.engine_profile
    if name not in presets.engine_profiles:
        raise InputError(f"unknown engine profile {name!r}; accepted: {', '.join(presets.engine_profiles)}")
    return options_from_dict({**asdict(presets.engine_profiles[name].options), **options})
