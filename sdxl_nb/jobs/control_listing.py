"""The ControlNet listing for the CLI, the API and the lab: name, where, size and the hash A1111 shows."""

from __future__ import annotations

from sdxl_nb.config.controlnets import controlnet_clashes, controlnet_problem, list_controlnets
from sdxl_nb.config.name_clash import clash_warning
from sdxl_nb.errors import InputError


def controlnet_listing() -> list[dict]:
    """[{name, path, source, revision, single_file, size_bytes, sha256, short_hash, usable, problem, clash}] of every
    known ControlNet; an unusable one (no weights, a malformed file) is listed with its reason."""
    table = controlnet_clashes()
    rows = []
    for entry in list_controlnets():
        problem = controlnet_problem(entry)
        try:
            sha, short = ("", "") if problem else (entry.content_hash(), entry.short_hash())
        except (InputError, OSError) as exc:  # an unreadable file is listed with its reason
            sha, short, problem = "", "", str(exc)
        clash = clash_warning("ControlNet", entry.name, table)
        rows.append({"name": entry.name, "path": entry.path, "source": entry.source, "revision": entry.revision,
                     "single_file": entry.single_file, "size_bytes": entry.size_bytes, "sha256": sha,
                     "short_hash": short, "usable": problem is None, "problem": problem,
                     "clash": clash[0] if clash else None})
    return rows
