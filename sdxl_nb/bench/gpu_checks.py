"""GPU figures through the product's own path: full-size SDXL in an HF-layout cache, loaded and run by the engine."""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

BASE_ID = "stabilityai/stable-diffusion-xl-base-1.0"
FP16_VAE_ID = "madebyollin/sdxl-vae-fp16-fix"
COMMIT = "0000000000000000000000000000000000000001"


def write_hub_cache(cache: Path, *, device: str = "cuda", architecture: str = "full", refiner: bool = False) -> dict:
    """Save random-weight SDXL base and an fp16-safe VAE into `cache` in the hub layout (fp16 variant on CUDA);
    with `refiner`, also the SDXL refiner beside it (its own random UNet; the base's VAE and text_encoder_2)."""
    import torch

    from sdxl_nb.bench.gpu_recipe import build_pipeline

    started = time.perf_counter()
    cuda = device.startswith("cuda")
    pipe = build_pipeline(architecture, device, torch.float16 if cuda else torch.float32)
    pipe.save_pretrained(_snapshot(cache, BASE_ID), variant="fp16" if cuda else None)
    if refiner:
        from sdxl_nb.bench.gpu_models import REFINER_ID, build_refiner

        build_refiner(pipe, architecture).save_pretrained(_snapshot(cache, REFINER_ID), variant="fp16" if cuda else None)
    # The base VAE keeps force_upcast (float32 decode); the dedicated VAE is marked fp16-safe, as the real one is.
    pipe.vae.register_to_config(force_upcast=False)
    pipe.vae.save_pretrained(_snapshot(cache, FP16_VAE_ID))
    del pipe
    if cuda:
        torch.cuda.empty_cache()
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    return {"cache_write_s": time.perf_counter() - started, "cache_bytes": size}


def _snapshot(cache: Path, repo_id: str) -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    return repo / "snapshots" / COMMIT


@contextmanager
def _hub_cache(cache: Path):
    before = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(cache)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_CACHE", None)
        else:
            os.environ["HF_HUB_CACHE"] = before


def product_path(*, device: str = "cuda", architecture: str = "full", width: int = 1024, height: int = 1024,
                 steps: int = 30, cfg: float = 7.0, repeats: int = 5, cache: Path | None = None, on_line=print) -> dict:
    """Load full-size SDXL from a hub cache through the registry and engine; overhead, memory and fp16 VAE figures.

    `architecture="tiny"` on the CPU runs the same path on the embedded model's architecture (for tests).
    `cache`: a hub cache `write_hub_cache` already wrote (default: one of its own, written and removed here).
    """
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.local.environment import reset_peak_memory
    from sdxl_nb.bench.cpu_checks import generate_overhead
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.record.joblog import read_records

    with tempfile.TemporaryDirectory(prefix="sdxl_nb-gpu-") as tmp:
        out = Path(tmp) / "out"
        if cache is None:
            cache = Path(tmp) / "hub"
            result = write_hub_cache(cache, device=device, architecture=architecture)
        else:
            result = {}
        with _hub_cache(cache):
            engine = Engine(device=device)
            loaded = engine.load(find_model(BASE_ID, load_presets()))
            result.update(load_s=loaded.load_s, vae=loaded.vae, load_warnings=loaded.warnings,
                          vae_force_upcast=bool(loaded.pipe.vae.config.force_upcast))
            on_line(f"  loaded {BASE_ID} (random weights) from a hub cache in {loaded.load_s:.1f} s, "
                    f"VAE {loaded.vae and loaded.vae['id']}")
            reset_peak_memory(device)
            result.update(generate_overhead(engine, model=BASE_ID, width=width, height=height, steps=steps, cfg=cfg,
                                            repeats=repeats, out_dir=str(out)))
            on_line(f"  overhead {result['overhead_ratio']:.4f}x ({result['overhead_sdxl_nb_s']:.3f} s vs "
                    f"{result['overhead_bare_s']:.3f} s bare)")
            last = read_records(out / "jobs.log")[-1]
            check = last.get("memory_check") or {}
            result.update(memory_estimate_bytes=check.get("estimate_bytes"), memory_source=check.get("source"),
                          memory_peak_bytes=last.get("peak_memory_bytes"), job_status=last.get("status"),
                          job_events=last.get("events"), job_warnings=last.get("warnings"))
            if device.startswith("cuda"):
                result.update(vae_decode_precision(loaded.pipe, width=width, height=height))
    return result


def vae_decode_precision(pipe, *, width: int, height: int, repeats: int = 3) -> dict:
    """The VAE decode in its own dtype vs upcast to float32: time, peak memory, whether pixels stayed finite."""
    import statistics

    import torch

    from sdxl_nb.backends.local.decode import decode_latents
    from sdxl_nb.backends.local.environment import peak_memory, reset_peak_memory

    device = str(pipe.vae.device)
    cuda = device.startswith("cuda")
    latents = torch.randn(1, 4, height // 8, width // 8, generator=torch.Generator("cpu").manual_seed(0))
    latents = latents.to(device=device, dtype=pipe.vae.dtype)
    figures = {"vae_dtype": str(pipe.vae.dtype).removeprefix("torch.")}
    for name, float32 in (("native", False), ("fp32_upcast", True)):
        times, finite = [], True
        for i in range(repeats + 1):
            if cuda:
                torch.cuda.synchronize()
            reset_peak_memory(device)
            started = time.perf_counter()
            image = decode_latents(pipe, latents, float32=float32)
            if cuda:
                torch.cuda.synchronize()
            if i:  # the first decode is a warm-up
                times.append(time.perf_counter() - started)
            finite = finite and bool(torch.isfinite(image).all())
        figures[f"vae_decode_{name}_s"] = statistics.median(times)
        figures[f"vae_decode_{name}_peak_bytes"] = peak_memory(device)
        figures[f"vae_decode_{name}_finite"] = finite
    return figures
