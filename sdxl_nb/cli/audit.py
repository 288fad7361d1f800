"""`sdxl-nb audit`: integrity, drift and (optionally) bit-exact re-runs of a jobs.log; text or JSON."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "audit"
HELP = "audit a jobs.log: files intact, environment/preset drift, re-runs compared with the saved images"


def rerun_count(text: str) -> int | str:
    if text == "all":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a job count; accepted: a whole number >= 1, or all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", metavar="LOG_OR_DIR", help="a jobs.log file or an output folder")
    parser.add_argument("--rerun", type=rerun_count, metavar="N|all",
                        help="regenerate the last N jobs that saved images (or all) and compare pixel by pixel")
    parser.add_argument("--job", action="append", default=[], metavar="JOB_ID",
                        help="regenerate this job (full id or a unique prefix; repeatable)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from sdxl_nb.audit.report import run_audit
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK

    def progress(logged, drift: str) -> None:
        if not args.json:
            from sdxl_nb.audit.drift import comfy_server

            server = comfy_server(logged.record)
            print(f"re-running job {logged.record.get('job_id')} ({logged.record.get('mode')})"
                  + (f" on ComfyUI server {server}" if server else "") + (f" [{drift}]" if drift else ""),
                  file=sys.stderr)

    def skipped(logged, why: str) -> None:
        if not args.json:
            from sdxl_nb.audit.drift import comfy_server

            print(f"job {logged.record.get('job_id')} ({logged.record.get('mode')}): not re-run (made on ComfyUI "
                  f"server {comfy_server(logged.record)}): {why}", file=sys.stderr)

    report = run_audit(*args.sources, rerun=args.rerun, job_ids=tuple(args.job), on_job=progress, on_skip=skipped)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(report.text())
    return EXIT_OK if report.ok else EXIT_FAILED
