"""What ran where: versions, device, precision, peak memory; records carry it so audits can compare."""

from __future__ import annotations

import platform
import resource
import sys
from functools import lru_cache

import diffusers
import torch
import transformers

import sdxl_nb
from sdxl_nb.backends.local.loading import dtype_name


@lru_cache(maxsize=16)
def _device_name(device: str) -> str:
    """The device's name, looked up once: on Linux platform.processor() runs `uname -p` on every call."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def environment(device: str, dtype: torch.dtype) -> dict:
    cuda = device.startswith("cuda")
    return {
        "python": platform.python_version(),
        "platform": sys.platform,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "sdxl_nb": sdxl_nb.__version__,
        "cuda": torch.version.cuda,
        "gpu": _device_name(device) if cuda else None,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "dtype": dtype_name(dtype),
        "attention": "sdpa" if hasattr(torch.nn.functional, "scaled_dot_product_attention") else "default",
        # On the CPU the thread count splits float sums differently: pixels can move by a level.
        "cpu_threads": None if cuda else torch.get_num_threads(),
    }


def device_record(device: str) -> dict:
    return {"type": "cuda" if device.startswith("cuda") else device, "name": _device_name(device)}


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: str) -> int:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    # On CPU: the process's peak resident memory (Linux reports KiB).
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
