"""Out-of-memory handling: detect it, free the cache, and step down a ladder of lighter settings (auto-tuning)."""

from __future__ import annotations

import gc
import resource

import psutil
import torch

from sdxl_nb.errors import GenerationError

_OOM_TEXTS = ("out of memory", "can't allocate memory", "failed to allocate", "not enough memory")


class OutOfMemory(GenerationError):
    """Out of memory, and auto-tuning is off or has nothing lighter left to try."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (isinstance(exc, MemoryError)
                                                             or any(t in text for t in _OOM_TEXTS))


def free_cached_memory(device: str) -> None:
    """Drop what the failed attempt left: Python garbage first (it holds tensors), then the CUDA cache."""
    gc.collect()
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_memory_bytes(device: str) -> int:
    """Free memory on the device now: CUDA's free bytes (mem_get_info), on the CPU the available RAM."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return int(psutil.virtual_memory().available)


def in_use_bytes(device: str) -> int:
    """What this process already holds on the device: allocated CUDA memory, or its resident RAM."""
    if device.startswith("cuda"):
        return int(torch.cuda.memory_allocated(torch.device(device)))
    return int(psutil.Process().memory_info().rss) or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def component_bytes(pipe) -> dict[str, int]:
    """Real bytes of each loaded module's parameters and buffers (unet, vae, text encoders)."""
    sizes = {}
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            tensors = list(module.parameters()) + list(module.buffers())
            sizes[name] = sum(t.numel() * t.element_size() for t in tensors)
    return sizes


def offload_possible(device: str) -> bool:
    """Model CPU offload moves modules between the CPU and an accelerator; on the CPU there is nowhere to go."""
    return not device.startswith("cpu")


def enable_offload(pipe, device: str) -> None:
    pipe.enable_model_cpu_offload(device=device)


def disable_offload(pipe, device: str) -> None:
    pipe.remove_all_hooks()
    pipe.to(device)


class MemoryTuner:
    """The ladder on out of memory: halve the images at once down to 1, then VAE slicing + tiling, then
    model CPU offload. Every step is an event; `restore()` puts the pipeline back as it was after the job.
    """

    def __init__(self, pipe, device: str, chunk_size: int, *, enabled: bool, size: str, split: bool = True):
        self.pipe, self.device, self.enabled, self.size = pipe, device, enabled, size
        self.split = split  # False when the calls' grouping is fixed (an exact re-run repeats the record's)
        self.chunk_size = chunk_size
        self.events: list[str] = []
        self.tried: list[str] = []
        self.vae_reduced = False
        self.offloaded = False
        self.changed = False

    def on_out_of_memory(self, message: str, images: int) -> None:
        """Free the cache and take one step down; raise OutOfMemory when off or nothing lighter is left."""
        free_cached_memory(self.device)
        where = f"out of memory on {self.device} at {self.size} with {images} image(s) at once"
        if not self.enabled:
            raise OutOfMemory(f"{where}: {message}; lower the size or batch, or turn on auto-tuning "
                              f"(the lab's 'retry with lighter settings' box; auto_tune=True in Python, --auto-tune on the "
                              f"command line) to retry lighter settings")
        self.tried.append(f"{images} image(s) at once" + (" with VAE slicing+tiling" if self.vae_reduced else "")
                          + (" with model CPU offload" if self.offloaded else ""))
        self.changed = True
        if images > 1 and self.split:
            self.chunk_size = (images + 1) // 2
            self.events.append(f"{where} ({message}); freed the cache; retrying {self.chunk_size} at a time")
        elif not self.vae_reduced:
            self.pipe.vae.enable_slicing()
            self.pipe.vae.enable_tiling()
            self.vae_reduced = True
            self.events.append(f"{where} ({message}); freed the cache; retrying with VAE slicing and tiling")
        elif not self.offloaded and offload_possible(self.device):
            enable_offload(self.pipe, self.device)
            self.offloaded = True
            self.events.append(f"{where} ({message}); freed the cache; retrying with model CPU offload")
        else:
            if not offload_possible(self.device):
                self.tried.append("(model CPU offload does not apply: the model already runs on the CPU)")
            self.events.append(f"{where} ({message}); nothing lighter left to try")
            raise OutOfMemory(f"{where} even after auto-tuning; tried: {'; '.join(self.tried)}. "
                              f"Lower the size (e.g. 768x768) or close what else uses the device")

    def adjustments(self, chunks: list[int]) -> dict | None:
        """What the job ran with, for its record; None when nothing was changed."""
        if not self.changed:
            return None
        return {"chunks": chunks, "vae_slicing": self.vae_reduced, "vae_tiling": self.vae_reduced,
                "cpu_offload": self.offloaded}

    def restore(self) -> None:
        """The next job starts from the loaded settings again (exact re-runs need them)."""
        if self.vae_reduced:
            self.pipe.vae.disable_slicing()
            self.pipe.vae.disable_tiling()
        if self.offloaded:
            disable_offload(self.pipe, self.device)
