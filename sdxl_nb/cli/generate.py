"""`sdxl-nb generate`: one job from the command line; prints saved paths or the record."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "generate"
HELP = "generate images and record the job in jobs.log"


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The request options shared by every verb that builds a GenerationRequest."""
    parser.add_argument("--prompt", required=True, help="what to draw")
    parser.add_argument("--negative", default="", help="what to avoid (the style's negative is appended)")
    parser.add_argument("--model", help="model id (see `sdxl-nb models`); default: a cached SDXL model, else tiny-sdxl")
    parser.add_argument("--scheduler", help="scheduler name (see `sdxl-nb presets`)")
    parser.add_argument("--style", help="style preset name (see `sdxl-nb presets`)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", type=float, help="guidance scale")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--resolution", help="a resolution preset name such as 1024x1024")
    parser.add_argument("--batch", type=int, default=1, help="images in this job (seeds seed, seed+1, ...)")
    parser.add_argument("--seed", type=int, help="base seed; random (and recorded) when omitted")
    parser.add_argument("--init-image", help="init image path: img2img (with --mask: inpaint)")
    parser.add_argument("--mask", help="inpaint mask path (white = repaint)")
    parser.add_argument("--strength", type=float, help="img2img/inpaint denoising strength, 0 < x <= 1")
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON instead of paths")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sdxl_nb.cli.backend_options import add_backend_arguments

    add_request_arguments(parser)
    add_backend_arguments(parser)


def request_from(args):
    from sdxl_nb.request import GenerationRequest

    return GenerationRequest(
        prompt=args.prompt, negative_prompt=args.negative, model=args.model, scheduler=args.scheduler,
        style=args.style, steps=args.steps, cfg=args.cfg, width=args.width, height=args.height,
        resolution=args.resolution, batch=args.batch, seed=args.seed, init_image=args.init_image,
        mask_image=args.mask, strength=args.strength,
    )


def print_result(result, as_json: bool) -> int:
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK

    if as_json:
        print(json.dumps(result.record, ensure_ascii=False))
    else:
        for warning in result.record["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        for path in result.paths:
            print(path)
    if result.record.get("error"):
        print(f"error: {result.record['error']}", file=sys.stderr)
    if getattr(result, "mirror_error", None):
        print(f"warning: {result.mirror_error}", file=sys.stderr)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def run(args) -> int:
    from sdxl_nb.api import generate
    from sdxl_nb.cli.backend_options import backend_choice

    def progress(p: dict) -> None:
        if sys.stderr.isatty():
            print(f"\rstep {p['step']}/{p['total']} (chunk {p['chunk']}/{p['chunks']})", end="", file=sys.stderr)

    remote, engine = backend_choice(args)
    if remote is not None:
        result = remote(request_from(args), out_dir=args.out, on_progress=progress)
    else:
        result = generate(request_from(args), out_dir=args.out, on_progress=progress, engine=engine)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return print_result(result, args.json)
