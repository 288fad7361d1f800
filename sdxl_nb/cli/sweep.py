"""`sdxl-nb sweep`: one or two request fields over lists of values; one job per cell and a labelled grid."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "sweep"
HELP = "vary one or two request fields (an X/Y grid): one recorded job per cell, a labelled grid image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sdxl_nb.cli.backend_options import add_backend_arguments
    from sdxl_nb.cli.generate import add_control_arguments, add_hires_arguments, add_request_arguments
    from sdxl_nb.jobs.sweep import SWEEPABLE

    parser.add_argument("--x", required=True, metavar="FIELD=V1,V2,...",
                        help=f"the X axis; a JSON list for values with commas (FIELD=[\"a, b\", \"c\"]); "
                             f"fields: {', '.join(SWEEPABLE)}")
    parser.add_argument("--y", metavar="FIELD=V1,V2,...", help="an optional Y axis, like --x")
    add_request_arguments(parser)
    add_control_arguments(parser)  # every cell guided by the same ControlNet unit
    add_hires_arguments(parser)
    add_backend_arguments(parser)
    for action in parser._actions:
        if action.dest == "prompt":  # a prompt axis gives the prompts itself
            action.required = False
            action.help = "what to draw (not needed when an axis sweeps prompt)"


def run(args) -> int:
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK
    from sdxl_nb.cli.backend_options import backend_choice
    from sdxl_nb.cli.generate import request_from
    from sdxl_nb.errors import InputError
    from sdxl_nb.jobs.sweep import parse_axis, plan_sweep, run_planned_sweep

    x = parse_axis(args.x)
    y = None if args.y is None else parse_axis(args.y)
    if args.prompt is None:
        if "prompt" not in (x.field, None if y is None else y.field):
            raise InputError("give --prompt (or sweep the prompt with --x/--y prompt=...)")
        args.prompt = ""

    def progress(p: dict) -> None:
        if sys.stderr.isatty():
            print(f"\rcell {p['cell']}/{p['cells']}, step {p['step']}/{p['total']}", end="", file=sys.stderr)

    plan = plan_sweep(request_from(args), x, y)  # every cell checked before a backend is contacted
    result = run_planned_sweep(plan, engine=backend_choice(args), out_dir=args.out, on_progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({"sweep_id": result.plan.id, "status": result.status,
                          "grid": None if result.grid_path is None else str(result.grid_path),
                          "jobs": [job.record for job in result.results.values()]}, ensure_ascii=False))
    else:
        for (xi, yi), error in result.errors.items():
            print(f"cell {result.plan.x.label(xi)}" + ("" if result.plan.y is None else
                  f", {result.plan.y.label(yi)}") + f" failed: {error}", file=sys.stderr)
        for job in result.results.values():
            for path in job.paths:
                print(path)
        if result.grid_path:
            print(result.grid_path)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED
