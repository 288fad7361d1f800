"""`sdxl-nb ip-adapters`: every IP-Adapter with its size, hash, image encoder and whether it fits a model."""

from __future__ import annotations

import json

NAME = "ip-adapters"
HELP = "list IP-Adapters (SDXL_NB_IP_ADAPTERS, h94/IP-Adapter in the HF cache, the tiny one) and their fit to a model"


def add_arguments(parser) -> None:
    parser.add_argument("--model", help="the model to check each adapter against (default: the default model)")
    parser.add_argument("--no-check", action="store_true", help="skip the fit check (no model files read)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from sdxl_nb.config.ip_adapters import ip_adapter_listing

    rows = ip_adapter_listing(args.model, fits=not args.no_check)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        fit = "UNUSABLE" if not row["usable"] else "" if row["fits"] is None else (
            "fits" if row["fits"] else "DOES NOT FIT")
        print(f"{row['name']:32} {row['size_bytes'] / 2**20:8.1f} MiB  {row['a1111_hash'] or '?':8}  {fit:12}  "
              f"{row['path']}")
        print(f"    image encoder: {row['image_encoder']}")
        for line in (row["problem"], row["clash"]):
            if line:
                print(f"    {line}")
    if rows and rows[0]["model"]:
        print(f"(fit checked against {rows[0]['model']}; use: --ip-adapter NAME --ip-image PATH [--ip-scale W])")
    return 0
