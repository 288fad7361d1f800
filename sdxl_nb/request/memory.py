"""Peak-memory estimate for a request, calibrated from this device's jobs.log, and advice when it will not fit; pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

MIB, GIB = 1024**2, 1024**3
# Fallback constants, used until jobs.log holds CALIBRATION_MIN_RECORDS matching records. Orders of
# magnitude from public SDXL measurements (1024x1024 in float16: ~1.5 GB of UNet activations with
# guidance, ~3 GB for the VAE decode), as bytes per output pixel per image per byte of dtype.
UNET_BYTES_PER_PIXEL = 360  # per classifier-free-guidance branch (guidance doubles the UNet batch)
VAE_BYTES_PER_PIXEL = 1500
VAE_TILE_PIXELS = 1024 * 1024  # tiled decoding never holds more than one SDXL-VAE tile at once
OVERHEAD_BYTES = 512 * MIB  # allocator fragmentation, scheduler and text-encoder buffers
SAFETY = 0.9  # a request is risky above 90% of the free memory
CALIBRATION_MIN_RECORDS = 3
CALIBRATION_MAX_RECORDS = 200  # the newest ones: drivers and versions change
OFFLOAD_MODES = ("none", "model", "sequential")
# Public SDXL base parameter counts, for estimates made before a model is loaded.
SDXL_PARAMETERS = {"unet": 2_567_463_684, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840,
                   "vae": 83_653_863}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class MemoryRequest:
    """What decides a job's peak memory."""

    component_bytes: Mapping[str, int]  # real parameter bytes per loaded component (unet, vae, ...)
    dtype: str  # "float16", "bfloat16" or "float32"
    width: int
    height: int
    images_at_once: int  # the chunk size: images per pipeline call
    cfg: float = 7.0  # guidance above 1 doubles the UNet batch
    offload: str = "none"  # "none", "model" (one component on the device at a time) or "sequential"
    vae_slicing: bool = False
    vae_tiling: bool = False
    vae_float32: bool = False  # the VAE decodes upcast to float32 (force_upcast, or the NaN guard)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Calibration:
    """A line fitted to jobs.log peaks: peak = weights + overhead + bytes_per_pixel * pixels * images at once."""

    bytes_per_pixel: float
    overhead_bytes: int
    records: int
    device: str


FALLBACK = "fallback constants"  # the record's source when no calibration applies
GENERIC = "a generic estimate: this model has no finished jobs on this device recorded yet"


@dataclass(frozen=True)
class MemoryEstimate:
    peak_bytes: int
    weights_bytes: int  # resident on the device at the peak (after offload)
    activation_bytes: int  # grows with size and images at once
    overhead_bytes: int
    source: str  # FALLBACK or "calibrated from N jobs.log records on <device>" (recorded as is)

    @property
    def said(self) -> str:
        """Where the estimate comes from, in words for a person."""
        return GENERIC if self.source == FALLBACK else self.source


@dataclass(frozen=True)
class MemoryAdvice:
    risky: bool
    estimate: MemoryEstimate
    free_bytes: int
    needed_bytes: int  # what must still fit into the free memory
    suggestion: tuple[int, int, int] | None  # (width, height, images at once) that fits; None: nothing does
    message: str  # one line; "" when the request fits


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def nominal_component_bytes(dtype: str) -> dict[str, int]:
    """SDXL base's components in a dtype, for a check before the model is loaded."""
    return {name: count * DTYPE_BYTES[dtype] for name, count in SDXL_PARAMETERS.items()}


def resident_weights(component_bytes: Mapping[str, int], offload: str) -> int:
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"unknown offload mode {offload!r}; accepted: {', '.join(OFFLOAD_MODES)}")
    if offload == "none":
        return sum(component_bytes.values())
    largest = max(component_bytes.values(), default=0)
    # Model offload keeps one whole component on the device; sequential offload one layer of it.
    return largest if offload == "model" else largest // 20


def estimate_peak(m: MemoryRequest, calibration: Calibration | None = None) -> MemoryEstimate:
    weights = resident_weights(m.component_bytes, m.offload)
    if calibration is not None:
        activation = int(calibration.bytes_per_pixel * m.pixels * m.images_at_once)
        return MemoryEstimate(weights + calibration.overhead_bytes + activation, weights, activation,
                              calibration.overhead_bytes,
                              f"calibrated from {calibration.records} jobs.log records on {calibration.device}")
    dtype_bytes = DTYPE_BYTES[m.dtype]
    branches = 2 if m.cfg > 1 else 1
    unet = UNET_BYTES_PER_PIXEL * dtype_bytes * branches * m.pixels * m.images_at_once
    vae_images = 1 if m.vae_slicing else m.images_at_once
    vae_pixels = min(m.pixels, VAE_TILE_PIXELS) if m.vae_tiling else m.pixels
    vae = VAE_BYTES_PER_PIXEL * (4 if m.vae_float32 else dtype_bytes) * vae_images * vae_pixels
    activation = max(unet, vae)  # the UNet's activations are freed before the decode starts
    return MemoryEstimate(weights + OVERHEAD_BYTES + activation, weights, activation, OVERHEAD_BYTES,
                          FALLBACK)


def calibrate(records: Iterable[dict], *, model_id: str, dtype: str, device_name: str,
              weights_bytes: int) -> Calibration | None:
    """Fit the activation line to the peaks this device recorded for this model and dtype.

    Only finished jobs that ran untuned count (auto-tuning changes what is resident). The slope comes
    from a least-squares fit; the intercept is then raised so that the line lies above every recorded
    peak: an estimate that errs high. None when fewer than CALIBRATION_MIN_RECORDS records match.
    """
    rows = []
    for record in records:
        if (record.get("status") != "ok" or record.get("auto_tune") or not record.get("peak_memory_bytes")
                or (record.get("model") or {}).get("id") != model_id
                or (record.get("model") or {}).get("dtype") != dtype
                or (record.get("device") or {}).get("name") != device_name):
            continue
        images = record.get("chunk_size") or record.get("batch") or 1
        size = record["hires"] if isinstance(record.get("hires"), dict) else record  # the peak's size
        work = int(size["width"]) * int(size["height"]) * min(int(images), int(record.get("batch") or images))
        rows.append((work, record["peak_memory_bytes"] - weights_bytes))
    rows = rows[-CALIBRATION_MAX_RECORDS:]
    if len(rows) < CALIBRATION_MIN_RECORDS:
        return None
    works = [w for w, _ in rows]
    if len(set(works)) < 2:
        # One size only: keep the fallback overhead and put the rest on the pixels.
        slope = max(0.0, max((excess - OVERHEAD_BYTES) / work for work, excess in rows))
    else:
        mean_w = sum(works) / len(rows)
        mean_e = sum(e for _, e in rows) / len(rows)
        variance = sum((w - mean_w) ** 2 for w in works)
        slope = max(0.0, sum((w - mean_w) * (e - mean_e) for w, e in rows) / variance)
    overhead = max(0, math.ceil(max(excess - slope * work for work, excess in rows)))
    return Calibration(bytes_per_pixel=slope, overhead_bytes=overhead, records=len(rows), device=device_name)


def advise(m: MemoryRequest, free_bytes: int, *, calibration: Calibration | None = None,
           in_use_bytes: int = 0) -> MemoryAdvice:
    """Compare the estimate with the free memory; when risky, suggest the largest setting that fits.

    `in_use_bytes`: what this process already holds on the device (loaded weights, on the CPU the
    interpreter too): part of the peak, but no longer part of the free memory.
    Suggestions first lower the images at once (same size), then the size (same aspect, multiples of 64).
    """
    estimate = estimate_peak(m, calibration)
    budget = int(free_bytes * SAFETY)

    def needed(candidate: MemoryRequest) -> int:
        return max(0, estimate_peak(candidate, calibration).peak_bytes - in_use_bytes)

    need = needed(m)
    if need <= budget:
        return MemoryAdvice(False, estimate, free_bytes, need, (m.width, m.height, m.images_at_once), "")
    suggestion = _suggest(m, budget, needed)
    what = f"{m.width}x{m.height} with {m.images_at_once} image(s) at once"
    message = (f"memory: this job needs about {gib(need)} more at its peak (estimated peak {gib(estimate.peak_bytes)} "
               f"for {what}, {estimate.said}) but only {gib(free_bytes)} is free; ")
    if suggestion is None:
        message += "even the smallest size does not fit: use CPU offload or free the device"
    else:
        width, height, images = suggestion
        message += f"suggested: {width}x{height} with {images} image(s) at once"
        if m.offload == "none":
            message += ", or retrying lighter settings on out of memory (auto-tuning) / CPU offload"
    return MemoryAdvice(True, estimate, free_bytes, need, suggestion, message)


def _suggest(m: MemoryRequest, budget: int, needed) -> tuple[int, int, int] | None:
    for images in range(m.images_at_once - 1, 0, -1):
        if needed(replace(m, images_at_once=images)) <= budget:
            return m.width, m.height, images
    for percent in range(99, 0, -1):  # the largest fitting size in 1% steps of the side (cheap arithmetic)
        width, height = (max(64, side * percent // 100 // 64 * 64) for side in (m.width, m.height))
        if needed(replace(m, width=width, height=height, images_at_once=1)) <= budget:
            return width, height, 1
    return None
