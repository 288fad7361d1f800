"""`sdxl-nb verify`: audit an output folder; with --repair, first clean up after killed processes."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

NAME = "verify"
HELP = ("audit an output folder: every jobs.log line parses, every logged image exists with its sha256, "
        "every PNG is logged, nothing temporary is left")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--repair", action="store_true",
                        help="first do what the next job would: remove leftover temporary files, move a torn "
                             "jobs.log tail aside, record jobs whose process died (said in logs/app_events.log)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def run(args) -> int:
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK
    from sdxl_nb.errors import InputError
    from sdxl_nb.jobs.pipeline import default_output_dir
    from sdxl_nb.record.recovery import recover, verify_folder

    folder = Path(args.out) if args.out else default_output_dir()
    if not folder.is_dir():
        raise InputError(f"output folder {str(folder)!r} does not exist")
    repaired = recover(folder, before="sdxl-nb verify --repair").lines() if args.repair else []
    check = verify_folder(folder)
    if args.json:
        print(json.dumps({"folder": str(folder), "ok": check.ok, "repaired": repaired, **asdict(check)}))
        return EXIT_OK if check.ok else EXIT_FAILED
    for line in repaired:
        print(f"repaired: {line}")
    findings = [("line that does not parse", check.bad_lines), ("logged image missing", check.missing_images),
                ("logged image changed (sha256 differs)", check.changed_images),
                ("image no record names", check.unlogged_images),
                ("left by a killed process (sdxl-nb verify --repair removes it)", check.leftovers),
                ("job still running", check.running)]
    for label, items in findings:
        for item in items:
            print(f"{label}: {item}")
    print(f"{folder}: " + ("ok" if check.ok else "problems found"))
    return EXIT_OK if check.ok else EXIT_FAILED
