"""`sdxl-nb controlnets`: every ControlNet (embedded, HF cache, SDXL_NB_CONTROLNETS) and the preprocessors."""

from __future__ import annotations

import json

NAME = "controlnets"
HELP = "list ControlNets (SDXL_NB_CONTROLNETS, the HF cache, the embedded tiny one) and preprocessors"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from sdxl_nb.jobs.control_listing import controlnet_listing
    from sdxl_nb.request.control_maps import PREPROCESSORS

    rows = controlnet_listing()
    if args.json:
        print(json.dumps({"controlnets": rows, "preprocessors": list(PREPROCESSORS)}, indent=2))
        return 0
    for row in rows:
        kind = ("single file" if row["single_file"] else "diffusers") if row["usable"] else "UNUSABLE"
        print(f"{row['name']:40} {row['size_bytes'] / 2**20:8.1f} MiB  {row['short_hash']:8}  {kind:11}  {row['path']}")
        for line in (row["problem"], row["clash"]):
            if line:
                print(f"    {line}")
    print(f"(preprocessors: {', '.join(PREPROCESSORS)}; use: --controlnet NAME --control-image PATH "
          "--control-type canny)")
    return 0
