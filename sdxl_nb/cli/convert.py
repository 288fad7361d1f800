"""`sdxl-nb convert MODEL OUT`: a model as one A1111/ComfyUI .safetensors checkpoint, or a checkpoint as a diffusers folder."""

from __future__ import annotations

import json
import sys

NAME = "convert"
HELP = ("write MODEL (an id, or a .safetensors checkpoint) as a single-file checkpoint when OUT ends in "
        ".safetensors, else as a diffusers folder")


def add_arguments(parser) -> None:
    parser.add_argument("model", help="a model id (sdxl-nb models) or the path of a .safetensors checkpoint")
    parser.add_argument("out", help="OUT.safetensors (original SDXL key layout, what A1111 and ComfyUI load) or a "
                                    "new folder (diffusers layout)")
    parser.add_argument("--dtype", default="float32", help="weights' precision: float32 (default, bit-exact), "
                                                           "float16 or bfloat16 (half the size)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    from sdxl_nb.jobs.convert import check_convert, convert

    check_convert(args.model, args.out, args.dtype)  # bad arguments: one line before torch is imported
    result = convert(args.model, args.out, dtype=args.dtype,
                     on_stage=None if args.json else lambda stage: print(f"  {stage}...", file=sys.stderr))
    if args.json:
        print(json.dumps({**result.__dict__, "model_hash": result.model_hash}, indent=2))
        return 0
    size = f"{result.size_bytes / 2**20:.1f} MiB"
    if result.kind == "checkpoint":
        print(f"wrote {result.out} ({size}, {result.dtype}, Model hash {result.model_hash}): a single-file "
              "checkpoint; put it in a folder of SDXL_NB_CHECKPOINTS (or A1111/ComfyUI's) to use it")
    else:
        print(f"wrote {result.out} ({size}, {result.dtype}): a diffusers folder")
    return 0
