"""What a FileUpload widget holds once a user picked a file: made from a path for reused images and tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


def upload_value(path: str | Path) -> tuple[dict]:
    """FileUpload.value after a user picks this file (one item)."""
    data = Path(path).read_bytes()
    modified = datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC)
    return ({"name": Path(path).name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": modified},)
