"""Image upload buttons, and what a FileUpload holds once a user picked a file (made from a path for reused
images and tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


def upload_value(path: str | Path) -> tuple[dict]:
    """FileUpload.value after a user picks this file (one item)."""
    data = Path(path).read_bytes()
    modified = datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC)
    return ({"name": Path(path).name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": modified},)


def upload_width(label: str) -> str:
    """A button wide enough for its icon, its label and the " (N)" count the front end adds after a pick (the
    default 148 px cut "Control image (1)" to "Control image ...")."""
    return f"{max(148, 8 * len(label) + 72)}px"


def image_upload(label: str, *, multiple: bool = False):
    """An image FileUpload whose whole label shows."""
    import ipywidgets as w

    upload = w.FileUpload(accept="image/*", multiple=multiple, description=label,
                          layout=w.Layout(width=upload_width(label), flex="0 0 auto"))
    upload.add_class("sdxl-upload")
    return upload
