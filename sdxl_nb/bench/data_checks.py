"""Benchmarks of the data paths: jobs.log loading vs pandas.read_json, and animate frames batched vs one by one."""

from __future__ import annotations

import json
import subprocess
import sys

# Fallback sizes when read_json cannot hold the requested log in memory (it needs ~22 GB for 1M lines).
FALLBACK_LINES = (300_000, 100_000)


def _capped_bench_load(lines: int, repeats: int, cap_bytes: int, timeout_s: int) -> dict | None:
    """bench_load in a child process whose address space is capped; None when it ran out of memory."""
    code = ("import json, resource, sys\n"
            f"resource.setrlimit(resource.RLIMIT_AS, ({cap_bytes}, {cap_bytes}))\n"
            "from sdxl_nb.analysis.benchmark import bench_load\n"
            f"print(json.dumps(bench_load({lines}, {repeats})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode == 0:
        return json.loads(done.stdout)
    # numpy, pandas' JSON reader and the allocator each word running out of memory differently.
    if done.returncode < 0 or any(word in done.stderr for word in ("MemoryError", "Unable to allocate",
                                                                    "Could not reserve memory", "out of memory")):
        return None
    raise RuntimeError(f"log-loading benchmark failed: {done.stderr.strip().splitlines()[-1:]}")


def log_loading(lines: int, repeats: int, timeout_s: int = 3600) -> dict:
    """load_jobs vs read_json(lines=True) on a synthetic N-line jobs.log (ratio: ours / read_json)."""
    import psutil

    # The cap keeps a loader that runs out of memory from taking the machine (and other work) with it.
    cap = int(psutil.virtual_memory().available * 0.75)
    notes = []
    for size in (lines, *[n for n in FALLBACK_LINES if n < lines]):
        result = _capped_bench_load(size, repeats, cap, timeout_s)
        if result is not None:
            return {"log_load_ratio": result["ratio"], "log_load_lines": size, "log_load_ours_s": result["ours_s"],
                    "log_load_read_json_s": result["read_json_s"], "log_load_file_bytes": result["file_bytes"],
                    "log_load_notes": notes}
        notes.append(f"at {size:,} lines the comparison ran out of memory under a {cap / 2**30:.1f} GiB cap "
                     "(pandas.read_json needs about 22 GB for 1,000,000 such lines)")
    return {"log_load_ratio": None, "log_load_lines": None, "log_load_notes": notes}


def animate_batching(engine, *, frames: int, width: int, height: int, steps: int, repeats: int) -> dict:
    """The same animation frames run batched (one pipeline call for all) and one call per frame."""
    from sdxl_nb.jobs.animate.speed import measure_batching

    result = measure_batching(frames, frames, width=width, height=height, steps=steps, engine=engine, repeats=repeats)
    return {"animate_batch_speedup": result["speedup"],
            "animate_batch_settings": f"{frames} frames, {width}x{height}, {steps} steps, best of {repeats}"}
