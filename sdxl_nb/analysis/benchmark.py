"""Loading speed: `load_jobs` against pandas' own `read_json(lines=True)` on the same synthetic jobs.log."""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from sdxl_nb.analysis.frame import load_jobs
from sdxl_nb.analysis.synthetic import write_synthetic_log

TARGET_RATIO = 1.5  # load_jobs may take at most 1.5x read_json's time while flattening and tolerating bad lines


def _timed(function) -> tuple[float, int]:
    gc.collect()
    started = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - started
    rows = len(result)
    del result
    return elapsed, rows


def bench_load(lines: int = 1_000_000, repeats: int = 3, folder: str | os.PathLike | None = None,
               seed: int = 0) -> dict:
    """Write an N-line jobs.log of realistic records, then time both loaders alternately.

    The two loaders run interleaved (ours first on even rounds, read_json first on odd ones) so that
    drift in machine load hits both alike; the medians are compared. Returns ``ours_s``,
    ``read_json_s``, ``ratio`` (ours / read_json; the target is at most TARGET_RATIO), the raw
    runs, the file size and row counts.
    """
    if lines < 1 or repeats < 1:
        raise ValueError(f"lines and repeats must be at least 1, got {lines} and {repeats}")
    with tempfile.TemporaryDirectory(dir=folder, prefix="sdxl_nb-bench-") as scratch:
        path = write_synthetic_log(Path(scratch) / "jobs.log", lines, seed=seed)
        runners = {"ours": lambda: load_jobs(path), "read_json": lambda: pd.read_json(path, lines=True)}
        runs: dict[str, list[float]] = {"ours": [], "read_json": []}
        rows: dict[str, int] = {}
        for round_number in range(repeats):
            order = ("ours", "read_json") if round_number % 2 == 0 else ("read_json", "ours")
            for name in order:
                elapsed, rows[name] = _timed(runners[name])
                runs[name].append(elapsed)
        size = path.stat().st_size
    ours, theirs = statistics.median(runs["ours"]), statistics.median(runs["read_json"])
    return {"lines": lines, "file_bytes": size, "repeats": repeats, "ours_s": ours, "read_json_s": theirs,
            "ratio": ours / theirs, "target_ratio": TARGET_RATIO, "ours_rows": rows["ours"],
            "read_json_rows": rows["read_json"], "ours_runs": runs["ours"], "read_json_runs": runs["read_json"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", help="where the scratch jobs.log is written (default: the system temp folder)")
    args = parser.parse_args(argv)
    result = bench_load(args.lines, args.repeats, args.folder)
    print(json.dumps(result, indent=1))
    return 0 if result["ratio"] <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
