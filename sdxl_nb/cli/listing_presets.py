"""`sdxl-nb presets`: schedulers, styles, resolutions and engine profiles from presets.json."""

from __future__ import annotations

import json
import sys

NAME = "presets"
HELP = "list schedulers, styles, resolutions and engine profiles"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    from sdxl_nb.config.presets import load_presets

    presets = load_presets()
    if presets.user_error:
        print(f"warning: {presets.user_error}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "schedulers": {s.name: {"class": s.cls, "kwargs": s.kwargs, "description": s.description}
                           for s in presets.schedulers.values()},
            "styles": {s.name: {"prompt": s.prompt, "negative": s.negative, "scheduler": s.scheduler, "steps": s.steps,
                                "cfg": s.cfg, "hash": s.content_hash, "description": s.description}
                       for s in presets.styles.values()},
            "resolutions": {r.name: {"width": r.width, "height": r.height, "label": r.label}
                            for r in presets.resolutions.values()},
            "engine_profiles": {p.name: {"description": p.description, "options": p.options.record()}
                                for p in presets.engine_profiles.values()},
            "defaults": vars(presets.defaults),
        }, indent=2))
        return 0
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
    print("Engine profiles (--engine-profile):")
    for p in presets.engine_profiles.values():
        default = " (default)" if p.name == presets.defaults.engine_profile else ""
        print(f"  {p.name:22} {p.description}{default}")
    return 0
