"""Memory pre-check: a documented peak-memory heuristic and advice for a safer request; pure arithmetic."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GIB = 1024**3
# The heuristic (rough public figures for SDXL with PyTorch SDPA attention; to be calibrated from
# the peak_memory_bytes that jobs.log records):
#   peak = weights + overhead + images_at_once * (width * height / 1024^2) * (unet + vae)
# - weights: the loaded modules' bytes when known, else SDXL's ~3.5 B parameters (UNet 2.57 B,
#   two CLIP text encoders 0.82 B, VAE 0.08 B) times the bytes per value.
# - unet: activations of one 1024x1024 image through the UNet, classifier-free guidance included
#   (the batch is doubled inside), per 2 bytes per value.
# - vae: decoding one 1024x1024 latent; diffusers decodes a whole chunk at once, often in float32.
# - overhead: CUDA context, cuDNN/cuBLAS workspaces, allocator slack.
SDXL_PARAMETERS = 3.5e9
UNET_BYTES_PER_1024 = 1.25 * GIB
VAE_BYTES_PER_1024 = 2.5 * GIB
OVERHEAD_BYTES = 0.75 * GIB
# The embedded demo model's layers are ~10x narrower than SDXL's: its activations are ~1/10 per pixel.
LIGHT_MODEL_SCALE = 0.1
LIGHT_MODEL_WEIGHTS = 64 * 1024**2
# A request is risky when it needs more than this share of the free memory (fragmentation, spikes).
SAFE_SHARE = 0.9
MIN_SIDE = 64


@dataclass(frozen=True)
class VramCheck:
    risky: bool
    estimate_bytes: int  # the request's whole peak, weights included
    needed_bytes: int  # what it still needs beyond the memory already in use (loaded weights)
    free_bytes: int
    device: str
    message: str  # one line for the user
    suggestion: dict = field(default_factory=dict)  # safer settings: {"batch"} and/or {"width", "height"}


def estimate_peak_bytes(width: int, height: int, batch: int = 1, *, dtype_bytes: int = 2,
                        weights_bytes: int | None = None, heavy: bool = True, chunk_size: int | None = None) -> int:
    """Estimated peak device memory of one job (see the constants above for the model)."""
    at_once = min(batch, chunk_size or batch)
    scale = 1.0 if heavy else LIGHT_MODEL_SCALE
    if weights_bytes is None:
        weights_bytes = int(SDXL_PARAMETERS * dtype_bytes) if heavy else LIGHT_MODEL_WEIGHTS
    area = width * height / 1024**2
    per_image = (UNET_BYTES_PER_1024 * dtype_bytes / 2 + VAE_BYTES_PER_1024) * area * scale
    return int(weights_bytes + OVERHEAD_BYTES * scale + at_once * per_image)


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def precheck(width: int, height: int, batch: int, *, free_bytes: int, resident_bytes: int = 0,
             device: str = "cuda", dtype_bytes: int = 2, weights_bytes: int | None = None, heavy: bool = True,
             chunk_size: int | None = None) -> VramCheck:
    """Compare a request's estimated peak with the free memory; when risky, suggest a batch or size that fits.

    `resident_bytes` is memory this request reuses (the loaded model's weights): it is part of the
    estimate but already counted as used, so it is not needed again from `free_bytes`.
    """
    def needed(w: int, h: int, b: int) -> int:
        estimate = estimate_peak_bytes(w, h, b, dtype_bytes=dtype_bytes, weights_bytes=weights_bytes, heavy=heavy,
                                       chunk_size=chunk_size)
        return max(0, estimate - resident_bytes)

    def fits(w: int, h: int, b: int) -> bool:
        return needed(w, h, b) <= free_bytes * SAFE_SHARE

    estimate = estimate_peak_bytes(width, height, batch, dtype_bytes=dtype_bytes, weights_bytes=weights_bytes,
                                   heavy=heavy, chunk_size=chunk_size)
    need = needed(width, height, batch)
    summary = f"needs about {gib(need)} more, {gib(free_bytes)} free on {device} (estimated peak {gib(estimate)})"
    if fits(width, height, batch):
        return VramCheck(False, estimate, need, free_bytes, device, f"memory check: fits; {summary}")
    suggestion: dict = {}
    smaller_batch = next((b for b in range(batch - 1, 0, -1) if fits(width, height, b)), None)
    if smaller_batch:
        suggestion = {"batch": smaller_batch}
        advice = f"try batch {smaller_batch} (or several jobs) at {width}x{height}"
    else:
        size = safer_size(width, height, lambda w, h: fits(w, h, 1))
        if size:
            suggestion = {"batch": 1, "width": size[0], "height": size[1]}
            advice = f"try batch 1 at {size[0]}x{size[1]} (same aspect ratio)"
        else:
            advice = "even the smallest size may not fit; free memory or use a lighter model"
    return VramCheck(True, estimate, need, free_bytes, device, f"memory check: risky; {summary}; {advice}", suggestion)


def safer_size(width: int, height: int, fits) -> tuple[int, int] | None:
    """The largest size with about the same aspect ratio (multiples of 8) for which fits(w, h) holds."""
    for step in range(1, 40):
        scale = math.sqrt(0.9**step)  # 10% fewer pixels per step
        w, h = (max(MIN_SIDE, int(side * scale) // 8 * 8) for side in (width, height))
        if fits(w, h):
            return w, h
        if w == MIN_SIDE and h == MIN_SIDE:
            break
    return None
