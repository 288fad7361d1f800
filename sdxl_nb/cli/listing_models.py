"""`sdxl-nb models`: every selectable model with availability, revision (a checkpoint's Model hash) and size."""

from __future__ import annotations

import json

NAME = "models"
HELP = "list models with availability, revision and size"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import default_model_id, list_models

    presets = load_presets()
    infos = list_models(presets)
    default = default_model_id(presets)
    if args.json:
        print(json.dumps([{"id": i.id, "description": i.description, "source": i.source, "available": i.available,
                           "reason": i.reason, "revision": i.revision, "size_bytes": i.size_bytes,
                           "path": i.path, "sha256": i.sha256, "model_hash": i.model_hash,
                           "default": i.id == default, "role": "refiner" if i.preset.refiner else "base",
                           "inpainting": i.preset.inpainting}
                          for i in infos], indent=2))
        return 0
    for info in infos:
        mark = "*" if info.id == default else "r" if info.preset.refiner else "i" if info.preset.inpainting else " "
        # A checkpoint file that is there but cannot be used (malformed, ambiguous) is unusable, not missing.
        state = "available" if info.available else "unusable" if info.source == "checkpoint" else "missing"
        size = f"{info.size_bytes / 2**30:.1f} GiB" if info.size_bytes else ""
        # A checkpoint's revision column is its A1111 Model hash (the file's sha256, first 10 hex digits).
        print(f"{mark} {info.id:44} {state:9} {(info.revision or '')[:10]:10} {size:>9}  {info.description}")
        if not info.available:
            print(f"    {info.reason}")
    print("* default model; r: a refiner (--refiner MODEL), never a base model; i: an inpainting model (9-channel "
          "UNet: txt2img and img2img run with a full mask); a checkpoint's revision is its A1111 Model hash")
    return 0
