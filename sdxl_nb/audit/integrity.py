"""Integrity audit: every file a record names exists with its recorded sha256; files no record names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sdxl_nb.analysis.sources import LoggedRecord
from sdxl_nb.record.files import named_files
from sdxl_nb.record.joblog import JOBS_LOG
from sdxl_nb.record.store import TEMP_PREFIX, sha256_file

# Folders of an output folder that hold no job outputs (the events log, copied inputs).
IGNORED_FOLDERS = frozenset({"logs", "inputs"})
FILE_COLUMNS = ["job_id", "log", "line", "role", "path", "recorded_sha256", "actual_sha256", "state"]


def resolve_path(folder: Path, path: str) -> Path:
    """A recorded path: relative ones are relative to the output folder holding jobs.log."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else folder / candidate


@dataclass
class IntegrityReport:
    """`files`: one row per named file with its state (ok, missing, changed, unreadable, unverified)."""

    files: pd.DataFrame
    untracked: list[Path] = field(default_factory=list)  # in an output folder, named by no record
    leftovers: list[Path] = field(default_factory=list)  # temp files a killed writer left behind

    @property
    def damaged(self) -> pd.DataFrame:
        """Output files (not inputs) that are missing, changed or unreadable."""
        bad = self.files["state"].isin(["missing", "changed", "unreadable"])
        return self.files[bad & (self.files["role"] != "input")]

    @property
    def inputs_unavailable(self) -> pd.DataFrame:
        """Init/mask images gone or changed: those jobs cannot be re-run from their records."""
        return self.files[(self.files["role"] == "input") & (self.files["state"] != "ok")]

    def jobs_with_missing_images(self) -> pd.DataFrame:
        """Per job: how many of its output files are missing or changed."""
        damaged = self.damaged
        counts = damaged.groupby(["job_id", "log", "line"], sort=False, dropna=False)["state"]
        return counts.value_counts().unstack(fill_value=0).reset_index()

    @property
    def ok(self) -> bool:
        return self.damaged.empty and not self.untracked and not self.leftovers

    def problems(self) -> list[str]:
        lines = [f"{row.state} {row.role}: {row.path} (job {row.job_id}, {row.log}:{row.line})"
                 for row in self.damaged.itertuples()]
        lines += [f"untracked file (named by no record): {path}" for path in self.untracked]
        lines += [f"leftover temporary file (an interrupted save): {path}" for path in self.leftovers]
        return lines

    def warnings(self) -> list[str]:
        return [f"input {row.state}: {row.path} (job {row.job_id}); that job cannot be re-run from its record"
                for row in self.inputs_unavailable.itertuples()]


def _state(path: Path, recorded: str | None) -> tuple[str, str | None]:
    try:
        actual = sha256_file(path)
    except FileNotFoundError:
        return "missing", None
    except IsADirectoryError:
        return "unreadable", None
    except OSError:
        return ("missing", None) if not path.exists() else ("unreadable", None)
    if not recorded:
        return "unverified", actual  # an older record without a hash: present, nothing to compare
    return ("ok" if actual == recorded else "changed"), actual


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """All files under an output folder except jobs.log, logs/, inputs/ and hidden ones; and temp files."""
    files, temps = [], []
    for root, dirs, names in os.walk(folder):
        top = Path(root) == folder
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (top and d in IGNORED_FOLDERS))
        for name in sorted(names):
            if name.startswith(TEMP_PREFIX):
                temps.append(Path(root) / name)
            elif not name.startswith(".") and not (top and name.startswith(JOBS_LOG)):
                files.append(Path(root) / name)
    return files, temps


def check_integrity(records: list[LoggedRecord], folders: list[Path] | None = None) -> IntegrityReport:
    """Hash every file the records name and scan the output folders (default: those of the records;
    pass the logs' folders to also scan one whose log is empty) for files nobody names."""
    rows = []
    named: set[Path] = set()
    folders = list(folders or [])
    for logged in records:
        if logged.folder not in folders:
            folders.append(logged.folder)
        for role, entry in named_files(logged.record):
            path = resolve_path(logged.folder, entry["path"])
            named.add(path.absolute())
            recorded = entry.get("sha256") if isinstance(entry.get("sha256"), str) else None
            state, actual = _state(path, recorded)
            rows.append((logged.record.get("job_id"), str(logged.log), logged.line, role, str(path), recorded,
                         actual, state))
    untracked, leftovers = [], []
    for folder in folders:
        files, temps = _scan(folder)
        untracked += [path for path in files if path.absolute() not in named]
        leftovers += temps
    return IntegrityReport(files=pd.DataFrame(rows, columns=FILE_COLUMNS), untracked=untracked, leftovers=leftovers)
