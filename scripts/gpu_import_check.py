"""Run `python -m sdxl_nb ARGS` with every package the GPU machine's image lacks hidden from the import system, except
the wheels scripts/gpu-wheels.sh carries: a check, here, that the GPU bench imports nothing the device cannot load.

    python scripts/gpu_import_check.py bench --gpu-tiny --gpu-only --json /tmp/check.json

The image's packages are scripts/gpu-image-packages.txt, with what they require (their install was whole); the
carried ones are CARRIED below. Hidden modules a run looked for are listed on stderr at the end (optional probes
such as boto3 are fine: the run's exit status says whether anything needed was missing).
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata as metadata
import re
import runpy
import sys
from pathlib import Path

CARRIED = ("diffusers", "torchao")  # scripts/gpu-wheels.sh
HERE = Path(__file__).resolve().parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_distributions() -> set[str]:
    """The image's distributions and, transitively, what they require (extras left out)."""
    lines = (HERE / "gpu-image-packages.txt").read_text(encoding="utf-8").splitlines()
    have = {_norm(line) for line in lines if line.strip() and not line.startswith("#")}
    todo = list(have)
    while todo:
        try:
            requires = metadata.requires(todo.pop()) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            name = _norm(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
            if name not in have:
                have.add(name)
                todo.append(name)
    return have | {_norm(name) for name in CARRIED}


def hidden_modules() -> dict[str, list[str]]:
    """Top-level module -> distributions, for the installed modules no allowed distribution provides."""
    allowed = image_distributions()
    owners = metadata.packages_distributions()
    return {module: dists for module, dists in owners.items()
            if module != "sdxl_nb" and not any(_norm(d) in allowed for d in dists)}


def main(argv: list[str]) -> None:
    hidden, looked_for = hidden_modules(), set()

    class ImageOnly(importlib.machinery.PathFinder):
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            top = name.split(".")[0]
            if top in hidden:
                looked_for.add(top)
                return None  # as if not installed: imports fail, availability probes say "no"
            return importlib.machinery.PathFinder.find_spec(name, path, target)

    sys.meta_path[:] = [ImageOnly if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
    sys.argv = ["sdxl_nb", *argv]
    try:
        runpy.run_module("sdxl_nb", run_name="__main__", alter_sys=True)
    finally:
        print(f"gpu_import_check: hidden modules looked for: {', '.join(sorted(looked_for)) or 'none'}",
              file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
