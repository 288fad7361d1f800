"""`sdxl-nb bench --gpu`: the GPU parts, one after another on one hub cache, the figures handed back after each.

A device lease is short, so each part is selectable and its figures are kept the moment it ends (the caller
writes the JSON then): a time limit or a failing part still leaves every finished part's figures.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import traceback
from pathlib import Path

from sdxl_nb.errors import InputError, one_line

GPU_PARTS = ("product", "fastest", "stages", "recipe")
NO_CUDA = "--gpu needs a CUDA device; none is visible (torch.cuda.is_available() is False)"
# The recipe steps that compile: minutes each on full size, so the tiny check on a CPU leaves them out.
_COMPILING = ("+ torch.compile", "+ CUDA graphs")

# Per architecture: "full" takes the figures (SDXL 1024x1024, 30 steps); "tiny" checks the same code on a CPU.
SETTINGS = {
    "full": {
        "product": {"width": 1024, "height": 1024, "steps": 30, "cfg": 7.0, "repeats": 5},
        "fastest": {"width": 1024, "height": 1024, "steps": 30, "cfg": 7.0, "repeats": 5, "images": 16,
                    "batches": (1, 4, 8), "sustained_repeats": 1},
        "stages": {"width": 1024, "height": 1024, "steps": 30, "repeats": 3, "lora_repeats": 5, "hires_scale": 1.5,
                   "hires_steps": 15, "hires_denoise": 0.5, "switch": 0.8},
        "recipe": {"width": 1024, "height": 1024, "steps": 30, "cfg": 7.0, "repeats": 3},
    },
    "tiny": {
        "product": {"width": 64, "height": 64, "steps": 2, "cfg": 5.0, "repeats": 1},
        "fastest": {"width": 64, "height": 64, "steps": 2, "cfg": 5.0, "repeats": 1, "images": 8,
                    "batches": (1, 4, 8), "sustained_repeats": 1},
        "stages": {"width": 64, "height": 64, "steps": 2, "repeats": 1, "lora_repeats": 1, "hires_scale": 1.5,
                   "hires_steps": 2, "hires_denoise": 0.5, "switch": 0.8},
        "recipe": {"width": 64, "height": 64, "steps": 2, "cfg": 5.0, "repeats": 1},
    },
}


def parse_parts(text: str | None) -> tuple[str, ...]:
    """`--gpu-parts`: a comma list of part names (in the order given, once each); None: every part."""
    if text is None:
        return GPU_PARTS
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in GPU_PARTS] or ([] if names else [text])
    if bad:
        raise InputError(f"--gpu-parts: unknown part {bad[0]!r}; accepted: a comma list of {', '.join(GPU_PARTS)}")
    return tuple(dict.fromkeys(names))


class BenchCache:
    """One hub-layout cache for every part, written when the first part needs it and removed at the end."""

    def __init__(self, device: str, architecture: str, refiner: bool, into: dict | None = None):
        self.device, self.architecture, self.refiner = device, architecture, refiner
        self.into = into if into is not None else {}  # gets the cache's figures under "cache" once written
        self._tmp = tempfile.TemporaryDirectory(prefix="sdxl_nb-gpu-")
        self.path = Path(self._tmp.name) / "hub"
        self.figures: dict | None = None

    def ensure(self, on_line) -> Path:
        from sdxl_nb.bench.gpu_checks import write_hub_cache

        if self.figures is None:
            self.figures = write_hub_cache(self.path, device=self.device, architecture=self.architecture,
                                           refiner=self.refiner)
            self.into["cache"] = self.figures
            on_line(f"  wrote the random-weight hub cache ({self.figures['cache_bytes'] / 2**30:.2f} GiB"
                    f"{', refiner included' if self.refiner else ''}) in {self.figures['cache_write_s']:.1f} s")
        return self.path

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self._tmp.cleanup()


def _product(cache: BenchCache, device, architecture, settings, on_line, figures, checkpoint) -> None:
    from sdxl_nb.bench.gpu_checks import product_path

    figures["product_path"] = product_path(device=device, architecture=architecture, cache=cache.ensure(on_line),
                                           on_line=on_line, **settings)


def _fastest(cache: BenchCache, device, architecture, settings, on_line, figures, checkpoint) -> None:
    from sdxl_nb.bench.fastest import fastest_profile
    from sdxl_nb.bench.gpu_checks import _hub_cache

    with _hub_cache(cache.ensure(on_line)):
        fastest_profile(device=device, on_line=on_line, into=figures.setdefault("fastest", {}), checkpoint=checkpoint,
                        **settings)


def _stages(cache: BenchCache, device, architecture, settings, on_line, figures, checkpoint) -> None:
    from sdxl_nb.bench.gpu_checks import _hub_cache
    from sdxl_nb.bench.gpu_stages import stage_costs

    with _hub_cache(cache.ensure(on_line)):
        stage_costs(device=device, on_line=on_line, into=figures.setdefault("stages", {}), checkpoint=checkpoint,
                    **settings)


def _recipe(_cache: BenchCache, device, architecture, settings, on_line, figures, checkpoint) -> None:
    from sdxl_nb.bench.gpu_recipe import RECIPE, run_recipe

    steps = RECIPE if architecture == "full" else tuple(s for s in RECIPE if s not in _COMPILING)
    run_recipe(device=device, architecture=architecture, recipe=steps, on_line=on_line, into=figures,
               checkpoint=checkpoint, **settings)


RUNNERS = {"product": _product, "fastest": _fastest, "stages": _stages, "recipe": _recipe}
TITLES = {
    "product": "product path: the base from a hub cache, loaded and run by the engine (overhead, memory, VAE)",
    "fastest": 'the "Fastest (CUDA graphs)" profile through the product: per job, then sustained at each batch',
    "stages": "second stages and LoRA switching per job (refiner hand-off, hires pass, LoRA sets)",
    "recipe": "the speed recipe, step by step (fp16, bf16, SDPA, channels-last, fused QKV, compile, VAE, CUDA graphs, FP8)",
}


def run_gpu_parts(parts: tuple[str, ...] = GPU_PARTS, *, architecture: str = "full", device: str | None = None,
                  images: int | None = None, on_line=print, on_part=None) -> dict:
    """Run the parts in order; returns the `gpu` figures. After each part (finished or failed), and within a part
    after each of its stages, `on_part(figures)` is called so the caller can write them. A failing part is
    recorded under `errors` (one line; the traceback goes to stderr) and the next part runs. `images` overrides
    the sustained job's size."""
    import torch

    device = device or ("cuda" if architecture == "full" else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(NO_CUDA)
    figures: dict = {"architecture": architecture, "device": device, "parts": list(parts), "parts_done": [],
                     "parts_s": {}, "errors": {}, "torch": torch.__version__, "diffusers": _version("diffusers")}
    if device.startswith("cuda"):
        figures["gpu_name"] = torch.cuda.get_device_name()
    with BenchCache(device, architecture, refiner="stages" in parts, into=figures) as cache:
        for part in parts:
            settings = dict(SETTINGS[architecture][part])
            if part == "fastest" and images:
                settings["images"] = images
            on_line(f"GPU {part}: {TITLES[part]}")
            started = time.perf_counter()
            checkpoint = (lambda: on_part(figures)) if on_part is not None else None
            try:  # each part writes its figures into `figures` as it takes them (kept if it stops half-way)
                RUNNERS[part](cache, device, architecture, settings, on_line, figures, checkpoint)
                figures["parts_done"].append(part)
            except KeyboardInterrupt:  # Ctrl-C or gpu-bench.sh's time limit (SIGINT): name the part it cut, stop
                figures["errors"][part] = f"interrupted after {time.perf_counter() - started:.0f} s (time limit or stop)"
                figures["parts_s"][part] = time.perf_counter() - started
                if on_part is not None:
                    on_part(figures)
                raise
            except Exception as exc:  # noqa: BLE001 - one part's failure must not cost the others' figures
                traceback.print_exc(file=sys.stderr)
                figures["errors"][part] = one_line(exc)
                on_line(f"  {part} failed: {one_line(exc)}")
            figures["parts_s"][part] = time.perf_counter() - started
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            on_line(f"  {part}: {figures['parts_s'][part]:.1f} s")
            if on_part is not None:
                on_part(figures)
    return figures


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
