"""A job's warnings for the model files it uses by a name that several files share (the first found is used)."""

from __future__ import annotations


def clash_warnings(*, loras=(), embeddings=(), hires=None, ip_adapter=None, controlnets=()) -> tuple[str, ...]:
    """One line per shared name the job uses, naming every file and the one used; folders are read only for the
    kinds the job uses."""
    warnings: list[str] = []
    if loras:
        from sdxl_nb.config.loras import lora_clash_warnings

        warnings += lora_clash_warnings(lora.name for lora in loras)
    if embeddings:
        from sdxl_nb.config.embeddings import embedding_clash_warnings

        warnings += embedding_clash_warnings(embeddings)
    if hires is not None:  # a built-in's name too: a file named Lanczos.pth is not the one that runs
        from sdxl_nb.config.upscalers import upscaler_clash_warnings

        warnings += upscaler_clash_warnings(hires.upscaler.name)
    if ip_adapter is not None:
        from sdxl_nb.config.ip_adapters import ip_adapter_clash_warnings

        warnings += ip_adapter_clash_warnings(ip_adapter.name)
    if controlnets:
        from sdxl_nb.config.controlnets import controlnet_clash_warnings

        warnings += controlnet_clash_warnings(unit.model for unit in controlnets)
    return tuple(warnings)
