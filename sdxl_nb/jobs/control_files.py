"""A ControlNet job's own files: each unit's preprocessed control map, saved and named by the record."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sdxl_nb.jobs.files import JobFiles
from sdxl_nb.record.naming import slugify, timestamp
from sdxl_nb.request.control_maps import map_png, unit_map


def save_control_maps(record: dict, resolved, files: JobFiles, moment: datetime) -> dict[str, tuple[Path, object]]:
    """Write each unit's map (the exact pixels the ControlNet read) and name it in the record: the unit's `map`
    and a `control_maps` entry with its sha256 (so audits and verify know the file)."""
    found = {}
    for unit_index, unit in enumerate(resolved.controlnets):
        image = unit_map(unit, (resolved.width, resolved.height))
        name = f"{timestamp(moment)}_{slugify(record['prompt'])}_control{unit_index}_{unit.preprocessor}.png"
        entry = {"unit": unit_index, "preprocessor": unit.preprocessor}
        path = files.write(name, map_png(image), {"control_maps": entry})
        record["controlnets"][unit_index]["map"] = path.name
        found[f"control_map_{unit_index}"] = (path, image)
    return found
