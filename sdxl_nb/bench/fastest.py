"""The "Fastest (CUDA graphs)" engine profile through the product: per-job s/image and sustained throughput at
several batch sizes, each against the bare pipeline making the same calls on the same compiled pipeline.

The hub cache holding the base (`gpu_checks.write_hub_cache`) must be the active one (HF_HUB_CACHE).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sdxl_nb.bench.cpu_checks import BENCH_PROMPT, bare_calls
from sdxl_nb.bench.gpu_checks import BASE_ID
from sdxl_nb.bench.timing import interleaved, median

FASTEST_PROFILE = "Fastest (CUDA graphs)"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(call, device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    call()
    _sync(device)
    return time.perf_counter() - started


def fastest_profile(*, device: str = "cuda", width: int = 1024, height: int = 1024, steps: int = 30,
                    cfg: float = 7.0, repeats: int = 5, images: int = 16, batches: tuple[int, ...] = (1, 4, 8),
                    sustained_repeats: int = 1, on_line=print, into: dict | None = None, checkpoint=None) -> dict:
    """Load the base with the presets' "Fastest (CUDA graphs)" options (the profile's warm-up captures the graphs
    for its native size), then: one job (capture_s: its time minus the median job's), `repeats` jobs against
    the bare call (`job_ratio`), and per batch size b a job of `images` images at `chunk_size=b` against the bare
    pipeline making the same calls with `num_images_per_prompt=b` (each new b is a new static shape: a new
    capture, timed as one b-image job before the sustained run). On a CPU the CUDA graphs are "not applied"
    (said in `load_events`) and everything else runs the same.

    The figures go into `into` (default: a new dict) as they are taken, and `checkpoint()` is called after each
    stage, so a time limit or a failure keeps what was measured before it."""
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.local.environment import peak_memory, reset_peak_memory
    from sdxl_nb.config.engine_profiles import engine_options
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.record.joblog import read_records

    bad = [b for b in batches if b < 1 or images % b]
    if bad:
        raise ValueError(f"batch {bad[0]} does not divide the sustained job's {images} images")
    presets = load_presets()
    options = engine_options(FASTEST_PROFILE, presets)
    engine = Engine(device=device, options=options)
    reset_peak_memory(device)
    loaded = engine.load(find_model(BASE_ID, presets))
    warmups = [e for e in loaded.events if e.startswith("warm-up run")]
    result = into if into is not None else {}
    save = checkpoint or (lambda: None)
    result.update({"profile": FASTEST_PROFILE, "options": options.record(), "load_s": loaded.load_s,
                   "load_events": loaded.events,
                   "warmup_s": float(warmups[0].rsplit(" took ", 1)[1].split()[0]) if warmups else None,
                   "cuda_graphs_applied": any("CUDA graphs" in e and "not applied" not in e for e in loaded.events),
                   "size": f"{width}x{height}", "steps": steps, "cfg": cfg, "sustained": []})
    save()
    on_line(f"  loaded with {FASTEST_PROFILE} in {loaded.load_s:.1f} s" + (f" + warm-up {result['warmup_s']:.1f} s"
                                                                          if warmups else ""))
    with tempfile.TemporaryDirectory(prefix="sdxl_nb-fastest-") as tmp:
        out = Path(tmp) / "out"

        def job(batch: int = 1, chunk: int = 1):
            return lambda: generate(prompt=BENCH_PROMPT, model=BASE_ID, width=width, height=height, steps=steps,
                                    cfg=cfg, seed=1, batch=batch, chunk_size=chunk, out_dir=out, engine=engine)

        def bare(calls: int = 1, per_call: int = 1):
            return lambda: bare_calls(engine, loaded, seeds=range(1, calls * per_call + 1), per_call=per_call,
                                      width=width, height=height, steps=steps, cfg=cfg)

        first = _timed(job(), device)
        result["first_job_events"] = read_records(out / "jobs.log")[-1].get("events")
        times = interleaved({"bare": bare(), "sdxl_nb": job()}, repeats, warmup=0)
        job_s, bare_s = median(times["sdxl_nb"]), median(times["bare"])
        result.update(job_first_s=first, job_s=job_s, job_bare_s=bare_s, job_ratio=job_s / bare_s,
                      capture_s=max(first - job_s, 0.0), job_repeats=repeats)
        on_line(f"  per job {job_s:.3f} s/image vs {bare_s:.3f} s bare ({job_s / bare_s:.4f}x); first job "
                f"{first:.2f} s")
        result["sustained_repeats"] = sustained_repeats
        save()
        for batch in batches:
            calls = images // batch
            first = _timed(job(batch, batch), device)  # one call at this batch: a new shape captures here
            times = interleaved({"bare": bare(calls, batch), "sdxl_nb": job(images, batch)}, sustained_repeats,
                                warmup=0)
            ours, theirs = median(times["sdxl_nb"]), median(times["bare"])
            row = {"batch": batch, "images": images, "calls": calls, "sdxl_nb_s": ours, "bare_s": theirs,
                   "sdxl_nb_images_per_s": images / ours, "bare_images_per_s": images / theirs,
                   "ratio": ours / theirs, "first_call_s": first, "capture_s": max(first - ours / calls, 0.0)}
            result["sustained"].append(row)
            result["peak_memory_bytes"] = peak_memory(device)
            save()
            on_line(f"  batch {batch}: {row['sdxl_nb_images_per_s']:.3f} images/s vs {row['bare_images_per_s']:.3f} "
                    f"bare ({row['ratio']:.4f}x); first call {first:.1f} s")
    result["peak_memory_bytes"] = peak_memory(device)
    return result  # the engine goes with this frame; the runner then frees the GPU memory it held
