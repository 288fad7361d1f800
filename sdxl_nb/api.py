"""The public Python API in one place: a job, its preview, its preparation, and the kernel engine's options."""

from sdxl_nb.config.ip_adapters import ip_adapter_listing
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

__all__ = ["JobResult", "Preflight", "configure_engine", "default_output_dir", "embedding_listing", "engine_options",
           "generate", "ip_adapter_listing", "lora_listing", "preflight", "prepare"]
