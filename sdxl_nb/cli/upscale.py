"""`sdxl-nb upscale IMAGE`: enlarge an image with Lanczos or an upscaler model, recorded as its own job."""

from __future__ import annotations

NAME = "upscale"
HELP = "upscale an image (Lanczos or an upscaler model) as its own recorded job in jobs.log"


def add_arguments(parser) -> None:
    parser.add_argument("image", help="the image to enlarge (its A1111 parameters are kept in the result)")
    parser.add_argument("--scale", type=float, default=2.0, help="enlarge by this factor (greater than 1, at most 8)")
    parser.add_argument("--upscaler", metavar="NAME",
                        help="Lanczos (default) or an upscaler model's name (see `sdxl-nb upscalers`)")
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON instead of the path")


def run(args) -> int:
    from sdxl_nb.cli.generate import print_result
    from sdxl_nb.jobs.upscale import upscale

    return print_result(upscale(args.image, scale=args.scale, upscaler=args.upscaler, out_dir=args.out), args.json)
