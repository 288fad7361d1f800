"""Folders built once in the cache (the tiny models, bundled configs): one builder at a time, never half-built."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_folder_once(target: Path, marker: str, write: Callable[[Path], None]) -> Path:
    """`target`, built by `write(staging)` unless `target/marker` exists; returns `target`.

    The lock makes concurrent kernels build it once; the rename makes a half-built folder impossible.
    """
    from filelock import FileLock

    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / marker).is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            write(staging)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
