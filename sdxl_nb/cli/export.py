"""`sdxl-nb export DIR OUT`: one row per image with its settings, scores and image, as Parquet or a datasets folder."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a folder's images with their settings and scores (Parquet, or a Hugging Face datasets folder)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="an output folder holding jobs.log")
    parser.add_argument("out", metavar="OUT", help="the file (parquet) or folder (hf) to write; must not exist")
    parser.add_argument("--to", choices=("parquet", "hf"), default="parquet", help="parquet (default) or hf")
    parser.add_argument("--images", choices=("bytes", "path"), default="bytes",
                        help="embed each PNG's bytes (default) or keep only its path")


def run(args) -> int:
    from sdxl_nb.analysis.exporting import export
    from sdxl_nb.cli import EXIT_OK

    print(f"wrote {export(args.folder, args.out, to=args.to, images=args.images)}")
    return EXIT_OK
