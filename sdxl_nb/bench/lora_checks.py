"""The per-job cost of switching LoRA sets on a loaded model (adapters stay loaded: no reload between jobs)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sdxl_nb.bench.timing import interleaved, median


def lora_switching(engine, repeats: int, *, width: int = 64, height: int = 64, steps: int = 2,
                   model: str = "tiny-sdxl", files: list | None = None) -> dict:
    """Median ms to switch between three LoRA sets (a LoRA, it + a second one at other weights, none), the
    one-time load of each LoRA, and a job's median time for scale.

    Default: tiny-sdxl with the demo LoRA and a second tiny one; `files` (two LoRA files for `model`) replaces them.
    """
    from sdxl_nb.backends.base import RunHooks, RunPlan
    from sdxl_nb.config.loras import LoraUse, demo_lora, file_sha256
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.config.tiny_lora import tiny_lora_tensors, write_lora
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    presets = load_presets()
    loaded = engine.load(find_model(model, presets))
    with tempfile.TemporaryDirectory(prefix="sdxl_nb-bench-") as folder:
        if files is None:
            demo = demo_lora()
            named = [(demo.name, Path(demo.path)),
                     ("second", write_lora(Path(folder) / "second.safetensors", tiny_lora_tensors("peft", seed=9)))]
        else:
            named = [(Path(path).stem, Path(path)) for path in files[:2]]
        first = (named[0][0], str(named[0][1]), file_sha256(named[0][1]))
        uses = [LoraUse(*first, 0.8), LoraUse(named[1][0], str(named[1][1]), file_sha256(named[1][1]), 0.6)]
        switch = loaded.lora_switch()
        load_events = []
        for lora in uses:  # the one-time loads (the events say how long each took)
            load_events += [e for e in switch.apply([lora])[0] if e.startswith("loaded LoRA")]
        order = [uses[:1], [LoraUse(*first, 0.5), uses[1]], []]  # the first, both, none
        state = {"next": 0}

        def switch_once():  # every call moves to another set, as jobs with different LoRAs would
            state["next"] = (state["next"] + 1) % len(order)
            switch.apply(order[state["next"]])

        switch_s = interleaved({"switch": switch_once}, repeats * 3)["switch"]
        resolved = prepare(GenerationRequest(prompt="a fox", width=width, height=height, steps=steps, seed=1,
                                             model=model), presets)
        job_s = interleaved({"job": lambda: engine.run(RunPlan.for_request(resolved, chunk_size=1), loaded,
                                                       RunHooks())}, repeats)["job"]
        switch.apply([])
    switch_ms = median(switch_s) * 1000
    job_ms = median(job_s) * 1000
    return {"lora_switch_ms": switch_ms, "lora_switch_job_ms": job_ms, "lora_switch_share": switch_ms / job_ms,
            "lora_load_events": load_events}
