"""`sdxl-nb bench`: the benchmark (table on stdout, JSON with --json FILE)."""

from __future__ import annotations

NAME = "bench"
HELP = ("measure overhead, shared weights, scheduler swap, imports, log loading, animate batching, LoRA set "
        "switching (and GPU speed)")


def add_arguments(parser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument("--quick", action="store_true", help="small settings: the whole CPU run in under a minute")
    parser.add_argument("--gpu", action="store_true", help="also run the GPU recipe on full-size SDXL (needs CUDA)")


def run(args) -> int:
    from sdxl_nb.bench import run_bench, write_json

    result = run_bench(quick=args.quick, gpu=args.gpu)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0
