"""A job's files: each written whole under a new name, announced in the job's marker first, removable together."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sdxl_nb.record.recovery import JobMarker
from sdxl_nb.record.store import sha256_bytes, write_new_file


class JobFiles:
    """Publishes the files of one job (from several threads when replicas save their chunks)."""

    def __init__(self, folder: Path, marker: JobMarker, record: dict):
        self.folder, self.marker, self.record = folder, marker, record
        self.lock = threading.Lock()
        self.paths: list[Path] = []
        self.save_s = 0.0
        self.error: str | None = None  # the first failure to save: the job stops and keeps no file

    def write(self, name: str, data: bytes, entries: dict[str, dict]) -> Path:
        """Publish `data` as `name` (or name-2...) and name it in the record: `entries` are the record's items for
        it by field ({"images": {...}}, for a frame {"frames": {...}} too, for a grid {"grid": {...}}); each gets
        the final path and sha256. A list field gets the item appended, any other field is set to it."""
        digest = sha256_bytes(data)
        for entry in entries.values():
            entry["sha256"] = digest
        with self.lock:
            started = time.perf_counter()
            temp: dict[str, str] = {}

            def announce(temp_name: str) -> None:
                temp["name"] = temp_name
                self.marker.note({"file": entries, "temp": temp_name})

            path = write_new_file(self.folder, name, data, on_temp=announce, on_published=lambda target: self.marker.note(
                {"linked": temp["name"], "path": target.name}))
            self.paths.append(path)
            for role, entry in entries.items():
                entry["path"] = path.name
                if isinstance(self.record.get(role), list):
                    self.record[role].append(entry)
                else:
                    self.record[role] = entry
            self.save_s += time.perf_counter() - started
            return path

    def remove_all(self) -> None:
        """Nothing half-kept: a job that cannot save all its files keeps none."""
        with self.lock:
            for path in self.paths:
                path.unlink(missing_ok=True)
            self.paths.clear()
            for role in ("images", "frames", "animations", "control_maps"):
                if isinstance(self.record.get(role), list):
                    self.record[role] = []
            if "grid" in self.record:
                self.record["grid"] = None
