"""`sdxl-nb`: command-line verbs over the same library calls the panels use."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_generate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt", required=True, help="what to draw")
    parser.add_argument("--negative", default="", help="what to avoid (the style's negative is appended)")
    parser.add_argument("--model", help="model id (see `sdxl-nb models`); default: a cached SDXL model, else tiny-sdxl")
    parser.add_argument("--scheduler", help="scheduler name (see `sdxl-nb presets`)")
    parser.add_argument("--style", help="style preset name (see `sdxl-nb presets`)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", type=float, help="guidance scale")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--resolution", help="a resolution preset name such as 1024x1024")
    parser.add_argument("--batch", type=int, default=1, help="images in this job (seeds seed, seed+1, ...)")
    parser.add_argument("--seed", type=int, help="base seed; random (and recorded) when omitted")
    parser.add_argument("--init-image", help="init image path: img2img (with --mask: inpaint)")
    parser.add_argument("--mask", help="inpaint mask path (white = repaint)")
    parser.add_argument("--strength", type=float, help="img2img/inpaint denoising strength, 0 < x <= 1")
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON instead of paths")


def build_parser() -> argparse.ArgumentParser:
    from sdxl_nb import __version__

    parser = _Parser(prog="sdxl-nb", description="SDXL image lab: generate, list models and presets.")
    parser.add_argument("--version", action="version", version=f"sdxl-nb {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    generate = verbs.add_parser("generate", help="generate images and record the job in jobs.log")
    _add_generate_options(generate)
    models = verbs.add_parser("models", help="list models with availability, revision and size")
    models.add_argument("--json", action="store_true")
    presets = verbs.add_parser("presets", help="list schedulers, styles and resolutions")
    presets.add_argument("--json", action="store_true")
    return parser


def _request_from(args):
    from sdxl_nb.request import GenerationRequest

    return GenerationRequest(
        prompt=args.prompt, negative_prompt=args.negative, model=args.model, scheduler=args.scheduler,
        style=args.style, steps=args.steps, cfg=args.cfg, width=args.width, height=args.height,
        resolution=args.resolution, batch=args.batch, seed=args.seed, init_image=args.init_image,
        mask_image=args.mask, strength=args.strength,
    )


def _cmd_generate(args) -> int:
    from sdxl_nb.api import generate

    def progress(p: dict) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rstep {p['step']}/{p['total']} (chunk {p['chunk']}/{p['chunks']})", end="", file=sys.stderr)

    result = generate(_request_from(args), out_dir=args.out, on_progress=progress)
    if args.json:
        print(json.dumps(result.record, ensure_ascii=False))
    else:
        for warning in result.record["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        for path in result.paths:
            print(path)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def _cmd_models(args) -> int:
    from sdxl_nb.presets import load_presets
    from sdxl_nb.registry import default_model_id, list_models

    presets = load_presets()
    infos = list_models(presets)
    default = default_model_id(presets)
    if args.json:
        print(json.dumps([{"id": i.id, "description": i.description, "source": i.source, "available": i.available,
                           "reason": i.reason, "revision": i.revision, "size_bytes": i.size_bytes,
                           "path": i.path, "default": i.id == default} for i in infos], indent=2))
        return EXIT_OK
    for info in infos:
        mark = "*" if info.id == default else " "
        state = "available" if info.available else "missing"
        size = f"{info.size_bytes / 2**30:.1f} GiB" if info.size_bytes else ""
        revision = (info.revision or "")[:10]
        print(f"{mark} {info.id:44} {state:9} {revision:10} {size:>9}  {info.description}")
        if not info.available:
            print(f"    {info.reason}")
    print("* default model")
    return EXIT_OK


def _cmd_presets(args) -> int:
    from sdxl_nb.presets import load_presets

    presets = load_presets()
    if args.json:
        print(json.dumps({
            "schedulers": {s.name: {"class": s.cls, "kwargs": s.kwargs, "description": s.description}
                           for s in presets.schedulers.values()},
            "styles": {s.name: {"prompt": s.prompt, "negative": s.negative, "scheduler": s.scheduler, "steps": s.steps,
                                "cfg": s.cfg, "hash": s.content_hash, "description": s.description}
                       for s in presets.styles.values()},
            "resolutions": {r.name: {"width": r.width, "height": r.height, "label": r.label}
                            for r in presets.resolutions.values()},
            "defaults": vars(presets.defaults),
        }, indent=2))
        return EXIT_OK
    print("Schedulers:")
    for s in presets.schedulers.values():
        print(f"  {s.name:22} {s.cls or '(model default)':34} {s.description}")
    print("Styles:")
    for s in presets.styles.values():
        overrides = ", ".join(f"{k}={v}" for k, v in (("scheduler", s.scheduler), ("steps", s.steps), ("cfg", s.cfg)) if v)
        print(f"  {s.name:26} {s.description}" + (f" [{overrides}]" if overrides else ""))
    print("Resolutions:")
    for r in presets.resolutions.values():
        default = " (default)" if r.name == presets.defaults.resolution else ""
        print(f"  {r.name:10} {r.label}{default}")
    return EXIT_OK


COMMANDS = {"generate": _cmd_generate, "models": _cmd_models, "presets": _cmd_presets}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sdxl_nb.errors import GenerationError, InputError

    try:
        return COMMANDS[args.verb](args)
    except InputError as exc:
        print(f"sdxl-nb {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except GenerationError as exc:
        print(f"sdxl-nb {args.verb}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"sdxl-nb {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line; SDXL_NB_DEBUG=1 shows the traceback
        if os.environ.get("SDXL_NB_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"sdxl-nb {args.verb}: failed: {type(exc).__name__}: {first} (SDXL_NB_DEBUG=1 shows details)",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
