"""`sdxl-nb bench`: speed and memory figures as ratios measured in one run (never timed unit tests)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from sdxl_nb.record.secrets import mask_data

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


def run_bench(*, quick: bool = False, gpu: bool = False, on_line=print, gpu_only: bool = False,
              gpu_parts: str | None = None, gpu_tiny: bool = False, gpu_images: int | None = None,
              json_path: str | Path | None = None) -> dict:
    """Run every benchmark; returns the JSON-able result (top-level keys as documented in docs/PERFORMANCE.md).

    `gpu_parts` (a comma list of `gpu_run.GPU_PARTS`), `gpu_only` (no CPU figures) and `gpu_tiny` (the GPU parts
    on the tiny architecture on the CPU: a check of the code, not figures) imply `gpu`. With `json_path` the JSON
    is written after the CPU figures and again after each GPU part, so a time limit keeps what finished.
    """
    from sdxl_nb.bench.gpu_run import parse_parts

    parts = parse_parts(gpu_parts)  # bad input: one line before any work (or heavy import)
    gpu = gpu or gpu_only or gpu_tiny or gpu_parts is not None
    _check_images(gpu_images, "tiny" if gpu_tiny else "full")
    if gpu and not gpu_tiny:
        _check_cuda()  # before anything is printed or measured: a machine without CUDA learns it at once
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.bench import cpu_checks, data_checks, lora_checks, stage_checks

    pick = 0 if quick else 1
    engine = Engine(device="cpu")
    result: dict = {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "quick": quick,
                    "device": engine.device_record()}
    on_line("sdxl-nb bench" + (" (quick)" if quick else "") + (" (GPU parts only)" if gpu_only else ""))
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
    for name, step in [] if gpu_only else steps:
        figures = step()
        result.update(figures)
        on_line(_line(name, figures))
    result["env"] = engine.environment()
    if gpu:
        from sdxl_nb.bench.gpu_run import run_gpu_parts

        def keep(figures: dict) -> None:
            result["gpu"] = figures
            if json_path is not None:
                write_json(result, json_path)

        result["gpu"] = run_gpu_parts(parts, architecture="tiny" if gpu_tiny else "full", images=gpu_images,
                                      on_line=on_line, on_part=keep)
    return result


def _check_images(images: int | None, architecture: str) -> None:
    from sdxl_nb.bench.gpu_run import SETTINGS as GPU_SETTINGS
    from sdxl_nb.errors import InputError

    batches = GPU_SETTINGS[architecture]["fastest"]["batches"]
    if images is not None and (images < 1 or any(images % b for b in batches)):
        raise InputError(f"--gpu-images {images} is out of range; accepted: a positive multiple of every sustained "
                         f"batch size ({', '.join(map(str, batches))})")


def _check_cuda() -> None:
    import torch

    from sdxl_nb.bench.gpu_run import NO_CUDA
    from sdxl_nb.errors import InputError

    if not torch.cuda.is_available():
        raise InputError(NO_CUDA)


def _line(name: str, figures: dict) -> str:
    shown = {k: v for k, v in figures.items() if not isinstance(v, (dict, list))}
    return f"  {name:16} " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items())


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_json(result: dict, path: str | Path) -> None:
    """Write the figures as JSON, atomically (a reader or a kill mid-write never sees half a file)."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.writing")
    staging.write_text(json.dumps(mask_data(result), indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(staging, path)
