"""Builds Hugging Face hub caches in the real layout (blobs, snapshots of symlinks, refs) for tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def add_to_cache(cache: Path, repo_id: str, source: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Copy a model folder into `cache` as repo_id at `commit`; return the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot
