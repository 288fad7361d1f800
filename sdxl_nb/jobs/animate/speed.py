"""Frames batched versus one pipeline call per frame: the same frames timed both ways (for the benchmark)."""

from __future__ import annotations

from dataclasses import replace

from sdxl_nb.backends.base import RunPlan
from sdxl_nb.jobs.animate.job import frame_specs, prepare_animation
from sdxl_nb.jobs.animate.plan import AnimationRequest


def measure_batching(frames: int = 8, batch_size: int | None = None, *, width: int | None = None,
                     height: int | None = None, steps: int | None = None, model: str | None = None,
                     mode: str = "seed-walk", engine=None, repeats: int = 1) -> dict:
    """Seconds to run the same frames batched (batch_size; None: what fits) and one call per frame.

    Nothing is saved or logged. `speedup` is per_frame_s / batched_s (best of `repeats` each);
    `calls` is how the batched run grouped the frames.
    """
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    request = AnimationRequest(prompt="a lighthouse on a cliff at dusk", mode=mode, frames=frames, seed=1,
                               seed_end=None if mode == "seed-walk" else 2, width=width, height=height, steps=steps,
                               model=model, batch_size=batch_size,
                               prompt_end="a lighthouse in a storm" if mode == "prompt-travel" else None)
    plan = prepare_animation(request)
    job = RunPlan(request=plan.base, images=frame_specs(plan), chunk_size=batch_size)
    if engine is None:
        from sdxl_nb.backends.local import get_engine

        engine = get_engine()
    loaded = engine.load(find_model(plan.base.model.id, load_presets()))
    engine.run(replace(job, images=job.images[:1], chunk_size=1), loaded)  # warm-up: caches, allocator
    batched, per_frame, calls = [], [], []
    for _ in range(repeats):
        output = engine.run(job, loaded)
        batched.append(output.generate_s)
        calls = output.calls
        per_frame.append(engine.run(replace(job, chunk_size=1), loaded).generate_s)
    return {"frames": frames, "width": plan.base.width, "height": plan.base.height, "steps": plan.base.steps,
            "device": engine.device, "calls": calls, "batched_s": min(batched), "per_frame_s": min(per_frame),
            "speedup": min(per_frame) / min(batched)}
