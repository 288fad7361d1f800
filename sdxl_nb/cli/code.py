"""`sdxl-nb code`: a recorded job as a standalone diffusers script (no sdxl_nb) that re-creates its images."""

from __future__ import annotations

import argparse

NAME = "code"
HELP = "write a job as a standalone diffusers script that re-creates its images bit for bit on this machine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB_ID", help="a job id (or unique prefix) in the output folder's jobs.log, "
                                                      "or a saved image's path")
    parser.add_argument("--out-dir", metavar="DIR", help="the job's output folder (default: $SDXL_NB_OUTPUT or "
                                                          "output_images)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the script here (default: print it)")


def run(args) -> int:
    from sdxl_nb.cli import EXIT_OK
    from sdxl_nb.codegen import code

    text = code(args.job, out_dir=args.out_dir)
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(text, encoding="utf-8")
        print(args.output)
    else:
        print(text, end="")
    return EXIT_OK
