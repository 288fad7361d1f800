"""`sdxl-nb bench`: speed and memory figures as ratios measured in one run (never timed unit tests)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

# (quick, full) settings; --quick keeps the whole CPU run under a minute for CI smoke use.
SETTINGS = {
    "overhead": ({"width": 128, "height": 128, "steps": 4, "repeats": 5}, {"width": 256, "height": 256, "steps": 8, "repeats": 9}),
    "sustained": ({"width": 64, "height": 64, "steps": 2, "repeats": 1}, {"width": 128, "height": 128, "steps": 4, "repeats": 3}),
    "scheduler_repeats": (20, 100),
    "scheduler_jobs": ({"width": 64, "height": 64, "steps": 2}, {"width": 128, "height": 128, "steps": 4}),
    "import_repeats": (2, 5),
    "log_lines": (50_000, 1_000_000),
    "log_repeats": (1, 3),
    "lora_repeats": (5, 20),
    "stages": ({"width": 64, "height": 64, "steps": 4, "repeats": 1}, {"width": 128, "height": 128, "steps": 8, "repeats": 3}),
    "animate": ({"frames": 4, "width": 64, "height": 64, "steps": 2, "repeats": 1},
                {"frames": 8, "width": 128, "height": 128, "steps": 4, "repeats": 3}),
}


def run_bench(*, quick: bool = False, gpu: bool = False, on_line=print) -> dict:
    """Run every benchmark; returns the JSON-able result (top-level keys as documented in docs/PERFORMANCE.md)."""
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.bench import cpu_checks, data_checks, lora_checks, stage_checks

    pick = 0 if quick else 1
    engine = Engine(device="cpu")
    result: dict = {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "quick": quick,
                    "device": engine.device_record()}
    on_line("sdxl-nb bench" + (" (quick)" if quick else ""))
    steps = [
        ("overhead", lambda: cpu_checks.generate_overhead(engine, **SETTINGS["overhead"][pick])),
        ("sustained", lambda: cpu_checks.sustained_throughput(engine, **SETTINGS["sustained"][pick])),
        ("shared weights", lambda: cpu_checks.shared_weights(engine)),
        ("scheduler swap", lambda: cpu_checks.scheduler_swap(engine, SETTINGS["scheduler_repeats"][pick])),
        ("scheduler jobs", lambda: cpu_checks.scheduler_jobs(engine, **SETTINGS["scheduler_jobs"][pick])),
        ("light imports", lambda: cpu_checks.light_imports(SETTINGS["import_repeats"][pick])),
        ("log loading", lambda: data_checks.log_loading(SETTINGS["log_lines"][pick], SETTINGS["log_repeats"][pick])),
        ("animate batching", lambda: data_checks.animate_batching(engine, **SETTINGS["animate"][pick])),
        ("LoRA switching", lambda: lora_checks.lora_switching(engine, SETTINGS["lora_repeats"][pick])),
        ("second stages", lambda: stage_checks.second_stages(engine, **SETTINGS["stages"][pick])),
    ]
    for name, step in steps:
        figures = step()
        result.update(figures)
        on_line(_line(name, figures))
    result["env"] = engine.environment()
    if gpu:
        result["gpu"] = _gpu(on_line)
    return result


def _gpu(on_line) -> dict:
    import torch

    from sdxl_nb.bench.gpu_recipe import run_recipe
    from sdxl_nb.errors import InputError

    if not torch.cuda.is_available():
        raise InputError("--gpu needs a CUDA device; none is visible (torch.cuda.is_available() is False)")
    from sdxl_nb.bench.gpu_checks import product_path

    on_line("GPU product path: full-size SDXL (random weights) in a hub cache, loaded and run by the engine")
    figures = {"product_path": product_path(on_line=on_line)}
    on_line("GPU recipe: full-size SDXL architecture, random weights, 1024x1024, 30 steps, batch 1, cfg 7")
    figures.update(run_recipe(device="cuda", on_line=on_line))
    return figures


def _line(name: str, figures: dict) -> str:
    shown = {k: v for k, v in figures.items() if not isinstance(v, (dict, list))}
    return f"  {name:16} " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items())


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
