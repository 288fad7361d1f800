"""`sdxl-nb loras`: every LoRA (and embedding) with its size, A1111 short hash and whether it fits a model."""

from __future__ import annotations

import json

NAME = "loras"
HELP = "list LoRAs (SDXL_NB_LORAS and the demo LoRA) and embeddings with size, hash and fit to a model"


def add_arguments(parser) -> None:
    parser.add_argument("--model", help="the model to check each LoRA against (default: the default model)")
    parser.add_argument("--no-check", action="store_true", help="skip the fit check (no torch, no model files read)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from sdxl_nb.jobs.networks import embedding_listing, lora_listing

    loras = lora_listing(args.model, fits=not args.no_check)
    embeddings = embedding_listing()
    if args.json:
        print(json.dumps({"loras": loras, "embeddings": embeddings}, indent=2))
        return 0
    model = loras[0]["model"] if loras and loras[0]["model"] else None
    for row in loras:
        fit = "UNUSABLE" if not row["usable"] else "" if row["fits"] is None else (
            "fits" if row["fits"] else "DOES NOT FIT")
        print(f"{row['name']:32} {row['size_bytes'] / 2**20:8.1f} MiB  {row['short_hash'] or '?':12}  {fit:12}  "
              f"{row['path']}")
        for line in (row["problem"], row["clash"]):
            if line:
                print(f"    {line}")
    if model:
        print(f"(fit checked against {model}; tag: <lora:NAME:WEIGHT>, or --lora NAME:WEIGHT)")
    for row in embeddings:
        state = "" if row["usable"] else "  UNUSABLE"
        print(f"embedding {row['name']:22} {row['vectors'] or '?':>3} vectors  {row['path']}{state}")
        for line in (row["problem"], row["clash"]):
            if line:
                print(f"    {line}")
    return 0
