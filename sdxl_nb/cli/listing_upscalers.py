"""`sdxl-nb upscalers`: the hires fix's built-in upscalers and the upscaler models in SDXL_NB_UPSCALERS folders."""

from __future__ import annotations

import json

NAME = "upscalers"
HELP = "list upscalers: Latent, Lanczos and the models (ESRGAN, SwinIR, DAT...) in SDXL_NB_UPSCALERS folders"


def add_arguments(parser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="load each model file (imports torch) and show its architecture and scale")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from sdxl_nb.config.upscalers import find_upscaler, list_upscalers

    rows = list_upscalers()
    for row in rows:
        row["architecture"] = None
        if args.check and row["kind"] == "model" and row["usable"]:
            from sdxl_nb.backends.local.upscale import check_upscaler
            from sdxl_nb.errors import InputError

            try:
                row["architecture"] = check_upscaler(find_upscaler(row["name"]))
            except InputError as exc:
                row.update(usable=False, problem=str(exc))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        size = f"{row['size_bytes'] / 2**20:8.1f} MiB" if row["size_bytes"] is not None else " " * 12
        state = "UNUSABLE" if not row["usable"] else row["architecture"] or ""
        print(f"{row['name']:28} {row['kind']:7} {size}  {state:16} {row['path'] or ''}")
        for line in (row["problem"], row["clash"]):
            if line:
                print(f"    {line}")
    return 0
