"""Device memory facts for the pre-check: free memory now, and the bytes a loaded model occupies."""

from __future__ import annotations

import torch


def free_memory_bytes(device: str) -> int:
    """Free memory on the device: CUDA's free bytes, or the RAM available to new work on a CPU."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def resident_bytes(pipe) -> int:
    """Bytes of every weight and buffer of a pipeline's modules (each shared module counted once)."""
    seen, total = set(), 0
    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for tensor in [*component.parameters(), *component.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()
