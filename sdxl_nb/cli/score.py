"""`sdxl-nb score DIR`: score an output folder's images (CLIP score, aesthetic) into scores.jsonl beside jobs.log."""

from __future__ import annotations

import argparse

NAME = "score"
HELP = "score a folder's images with local models (CLIP score, LAION aesthetic) into scores.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="an output folder holding jobs.log")
    parser.add_argument("--scorer", action="append", dest="scorers", metavar="NAME",
                        help="clip or aesthetic; repeat for several (default: clip)")
    parser.add_argument("--model", help="the CLIP: a transformers folder, tiny-clip, or a repo id in the Hugging "
                                        "Face cache (default: openai/clip-vit-large-patch14)")
    parser.add_argument("--aesthetic-model", metavar="FILE", help="the aesthetic MLP's .safetensors/.pth file "
                                                                  "(default: $SDXL_NB_AESTHETIC)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--device", help="torch device (default: $SDXL_NB_DEVICE, else CUDA when present)")


def run(args) -> int:
    from sdxl_nb.analysis.scoring import score
    from sdxl_nb.cli import EXIT_OK

    done = score(args.folder, args.scorers or ["clip"], batch_size=args.batch_size, device=args.device,
                 model=args.model, aesthetic_model=args.aesthetic_model)
    print(done)
    return EXIT_OK
