"""The public Python API in one place: a job, its preview, its preparation, and the kernel engine's options."""

from sdxl_nb.config.ip_adapters import ip_adapter_listing
from sdxl_nb.config.upscalers import list_upscalers
from sdxl_nb.jobs.control_listing import controlnet_listing
from sdxl_nb.jobs.convert import Conversion, convert
from sdxl_nb.jobs.generate import generate
from sdxl_nb.jobs.networks import embedding_listing, lora_listing
from sdxl_nb.jobs.pipeline import (
    JobResult,
    Preflight,
    configure_engine,
    default_output_dir,
    engine_options,
    preflight,
    prepare,
)
from sdxl_nb.jobs.upscale import upscale
from sdxl_nb.request.control_maps import control_map


def list_models():
    """Every selectable model (presets, Hugging Face cache, single-file checkpoints) as registry ModelInfo, with
    availability, revision, size and, for a checkpoint, its path, sha256 and A1111 `model_hash`."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import list_models as _list_models

    return _list_models(load_presets())


__all__ = ["Conversion", "JobResult", "Preflight", "configure_engine", "control_map", "controlnet_listing", "convert",
           "default_output_dir", "embedding_listing", "engine_options", "generate", "ip_adapter_listing", "list_models",
           "list_upscalers", "lora_listing", "preflight", "prepare", "upscale"]
