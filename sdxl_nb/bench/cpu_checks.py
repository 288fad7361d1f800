"""Benchmarks that run anywhere (the tiny model on CPU): overhead, shared weights, scheduler swap, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from sdxl_nb.bench.timing import interleaved, median

BENCH_PROMPT = "a lighthouse on a cliff at dusk"
LIGHT_MODULES = ["sdxl_nb", "sdxl_nb.config.presets", "sdxl_nb.request.resolve", "sdxl_nb.config.registry", "sdxl_nb.record.joblog",
                 "sdxl_nb.record.metadata", "sdxl_nb.record.job_record", "sdxl_nb.jobs.pipeline", "sdxl_nb.cli"]


def generate_overhead(engine, *, width: int, height: int, steps: int, repeats: int, model: str = "tiny-sdxl",
                      cfg: float = 5.0, out_dir: str | None = None) -> dict:
    """A full sdxl_nb generate (resolve, style, save, metadata, hashing, log) vs the bare pipeline call."""

    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.jobs.generate import generate

    loaded = engine.load(find_model(model, load_presets()))
    out = out_dir or tempfile.mkdtemp(prefix="sdxl_nb-bench-")

    def bare():
        bare_calls(engine, loaded, seeds=[1], width=width, height=height, steps=steps, cfg=cfg)

    def ours():
        generate(prompt=BENCH_PROMPT, model=model, width=width, height=height, steps=steps, seed=1, cfg=cfg,
                 out_dir=out, engine=engine)

    times = interleaved({"bare": bare, "sdxl_nb": ours}, repeats)
    return {"overhead_ratio": median(times["sdxl_nb"]) / median(times["bare"]),
            "overhead_bare_s": median(times["bare"]), "overhead_sdxl_nb_s": median(times["sdxl_nb"]),
            "overhead_settings": f"{model}, {width}x{height}, {steps} steps, cfg {cfg}, batch 1, "
                                 f"{repeats} interleaved repetitions"}


def sustained_throughput(engine, *, width: int, height: int, steps: int, repeats: int, images: int = 16,
                         model: str = "tiny-sdxl", cfg: float = 5.0, out_dir: str | None = None) -> dict:
    """A job of `images` images at one per pipeline call against the bare pipeline making the same calls: what
    saving (PNG encode, metadata, sha256, fsync, journal) costs once it overlaps the next call (target <= 1.02)."""

    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.jobs.generate import generate

    loaded = engine.load(find_model(model, load_presets()))
    out = out_dir or tempfile.mkdtemp(prefix="sdxl_nb-bench-")

    def bare():
        bare_calls(engine, loaded, seeds=range(1, images + 1), width=width, height=height, steps=steps, cfg=cfg)

    def ours():
        generate(prompt=BENCH_PROMPT, model=model, width=width, height=height, steps=steps, seed=1, cfg=cfg, batch=images,
                 chunk_size=1, out_dir=out, engine=engine)

    times = interleaved({"bare": bare, "sdxl_nb": ours}, repeats)
    return {"sustained_ratio": median(times["sdxl_nb"]) / median(times["bare"]),
            "sustained_bare_s": median(times["bare"]), "sustained_sdxl_nb_s": median(times["sdxl_nb"]),
            "sustained_settings": f"{model}, {images} images at 1 per call, {width}x{height}, {steps} steps, "
                                  f"cfg {cfg}, {repeats} interleaved repetitions"}


def bare_calls(engine, loaded, *, seeds, width: int, height: int, steps: int, cfg: float, per_call: int = 1) -> None:
    """The bare diffusers calls the product is measured against: `per_call` images per call (one seed each), the
    model's scheduler, through the engine's call (with CUDA graphs, every call of the compiled UNet runs on the
    engine's one graph thread; otherwise it is the pipeline's own call)."""
    import torch

    pipe, seeds = loaded.pipe, list(seeds)
    with engine.lock:
        pipe.scheduler = engine.make_scheduler(loaded, None, {})
        for start in range(0, len(seeds), per_call):
            chunk = seeds[start:start + per_call]
            engine.call_pipeline(pipe, prompt=BENCH_PROMPT, negative_prompt=None, num_inference_steps=steps,
                                 guidance_scale=cfg, width=width, height=height, num_images_per_prompt=len(chunk),
                                 generator=[torch.Generator("cpu").manual_seed(seed) for seed in chunk],
                                 output_type="pil")
        if engine.device.startswith("cuda"):
            torch.cuda.synchronize()


def _unique_parameter_bytes(pipes) -> int:
    seen, total = set(), 0
    for pipe in pipes:
        for module in pipe.components.values():
            if hasattr(module, "parameters"):
                for p in module.parameters():
                    if p.data_ptr() not in seen:
                        seen.add(p.data_ptr())
                        total += p.numel() * p.element_size()
    return total


def shared_weights(engine) -> dict:
    """Extra parameter bytes after deriving img2img and inpaint pipelines from the loaded one (target: 0)."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    loaded = engine.load(find_model("tiny-sdxl", load_presets()))
    loaded.derived.clear()
    before = _unique_parameter_bytes([loaded.pipe])
    started = time.perf_counter()
    derived = [engine.pipeline(loaded, "img2img"), engine.pipeline(loaded, "inpaint")]
    create_s = time.perf_counter() - started
    after = _unique_parameter_bytes([loaded.pipe, *derived])
    dtypes = {str(p.unet.dtype) for p in [loaded.pipe, *derived]}
    return {"shared_extra_param_bytes": after - before, "shared_create_s": create_s, "shared_dtypes": sorted(dtypes)}


def scheduler_swap(engine, repeats: int) -> dict:
    """Median time to build each preset scheduler from the loaded model's config."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    presets = load_presets()
    loaded = engine.load(find_model("tiny-sdxl", presets))
    contenders = {s.name: (lambda s=s: engine.make_scheduler(loaded, s.cls, s.kwargs)) for s in presets.schedulers.values()}
    times = interleaved(contenders, repeats)
    per = {name: median(t) * 1000 for name, t in times.items()}
    return {"scheduler_swap_ms": max(per.values()), "scheduler_swap_ms_each": per}


def scheduler_jobs(engine, *, width: int, height: int, steps: int) -> dict:
    """One job through the product with each preset scheduler: every scheduler's own step code runs (a missing
    dependency such as scipy for LMS fails here, not in a user's job); seconds per job for each."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.jobs.generate import generate

    out = tempfile.mkdtemp(prefix="sdxl_nb-bench-")
    times = {}
    for scheduler in load_presets().schedulers.values():
        started = time.perf_counter()
        result = generate(prompt=BENCH_PROMPT, model="tiny-sdxl", width=width, height=height, steps=steps, seed=1,
                          scheduler=scheduler.name, out_dir=out, engine=engine)
        times[scheduler.name] = time.perf_counter() - started
        if result.status != "ok":
            raise RuntimeError(f"the {scheduler.name} scheduler's job ended {result.status}: {result.error}")
    return {"scheduler_jobs": len(times), "scheduler_job_s_each": times,
            "scheduler_job_settings": f"tiny-sdxl, {width}x{height}, {steps} steps, one job each"}


def light_imports(repeats: int) -> dict:
    """Import time of the pure and analysis modules in a fresh interpreter, and whether torch came along."""
    modules = LIGHT_MODULES + _optional_modules()
    code = ("import importlib, json, sys, time\n"
            "t = time.perf_counter()\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps([time.perf_counter() - t, 'torch' in sys.modules]))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      timeout=120).stdout) for _ in range(repeats)]
    return {"light_import_s": median([r[0] for r in runs]), "light_import_torch_loaded": any(r[1] for r in runs),
            "light_import_modules": modules}


def _optional_modules() -> list[str]:
    import importlib.util

    return [name for name in ("sdxl_nb.analysis",) if importlib.util.find_spec(name) is not None]
