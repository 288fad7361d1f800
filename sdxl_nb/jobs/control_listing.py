"""The ControlNet listing for the CLI, the API and the lab: name, where, size and the hash A1111 shows."""

from __future__ import annotations

from sdxl_nb.config.controlnets import list_controlnets
from sdxl_nb.errors import InputError


def controlnet_listing() -> list[dict]:
    """[{name, path, source, revision, single_file, size_bytes, sha256, short_hash}] of every known ControlNet."""
    rows = []
    for entry in list_controlnets():
        try:
            sha = entry.content_hash()
        except (InputError, OSError):  # an unreadable or weightless folder is listed with no hash
            sha = ""
        rows.append({"name": entry.name, "path": entry.path, "source": entry.source, "revision": entry.revision,
                     "single_file": entry.single_file, "size_bytes": entry.size_bytes, "sha256": sha,
                     "short_hash": sha[:8]})
    return rows
