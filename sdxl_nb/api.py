"""The public Python API in one place: a job, its preview, its preparation, and the kernel engine's options."""

from sdxl_nb.jobs.control_listing import controlnet_listing
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
from sdxl_nb.request.control_maps import control_map

__all__ = ["JobResult", "Preflight", "configure_engine", "control_map", "controlnet_listing", "default_output_dir",
           "embedding_listing", "engine_options", "generate", "lora_listing", "preflight", "prepare"]
