"""`sdxl-nb bench`: the benchmark (table on stdout, JSON with --json FILE)."""

from __future__ import annotations

import sys

NAME = "bench"
HELP = ("measure overhead, shared weights, scheduler swap, imports, log loading, animate batching, LoRA set "
        "switching (and GPU speed)")


def add_arguments(parser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument("--quick", action="store_true", help="small settings: the whole CPU run in under a minute")
    parser.add_argument("--gpu", action="store_true",
                        help="also take the GPU figures on full-size SDXL with random weights (needs CUDA)")
    parser.add_argument("--gpu-parts", metavar="LIST",
                        help="the GPU parts to run, in this order: a comma list of product, fastest, stages, recipe "
                             "(default: all; implies --gpu)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="skip the CPU figures: only the GPU parts (implies --gpu)")
    parser.add_argument("--gpu-tiny", action="store_true",
                        help="run the GPU parts on the tiny architecture on the CPU: checks the code and the JSON, "
                             "takes no figures (implies --gpu)")
    parser.add_argument("--gpu-images", type=int, metavar="N",
                        help="images in each sustained job of the fastest part (default 16; a multiple of 8)")


def run(args) -> int:
    from sdxl_nb.bench import run_bench, write_json

    result = run_bench(quick=args.quick, gpu=args.gpu, gpu_only=args.gpu_only, gpu_parts=args.gpu_parts,
                       gpu_tiny=args.gpu_tiny, gpu_images=args.gpu_images, json_path=args.json)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    errors = (result.get("gpu") or {}).get("errors") or {}
    for part, error in errors.items():
        print(f"GPU part {part} failed: {error}", file=sys.stderr)
    return 1 if errors else 0
