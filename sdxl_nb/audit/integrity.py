"""Integrity audit: every file a record names exists with its recorded sha256; files no record names."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sdxl_nb.analysis.sources import LoggedRecord
from sdxl_nb.config.trusted_folders import OUTSIDE_INPUTS, NotTrusted, within
from sdxl_nb.record.files import named_files
from sdxl_nb.record.joblog import JOBS_LOG, SCORES_FILE
from sdxl_nb.record.store import TEMP_PREFIX, sha256_file

# Folders of an output folder that hold no job outputs (the events log, copied inputs).
IGNORED_FOLDERS = frozenset({"logs", "inputs"})
INPUTS = "inputs"
# Files a job used rather than wrote (a LoRA, a checkpoint): checked by file drift in the user's model folders.
USED_FILE_ROLES = frozenset({"loras", "embeddings", "model", "refiner", "ip_adapter", "vae", "hires", "upscale"})
OUTSIDE = "outside"  # the state of a named file outside the audited folder: never opened
FILE_COLUMNS = ["job_id", "log", "line", "role", "path", "recorded_sha256", "actual_sha256", "state"]


def resolve_path(folder: Path, path: str) -> Path:
    """A recorded path as shown: relative ones are relative to the output folder holding jobs.log (nothing is
    checked; `folder_file` says whether it may be read)."""
    try:
        candidate = Path(path).expanduser()
    except RuntimeError:  # `~user` of no such user
        candidate = Path(path)
    return candidate if candidate.is_absolute() else folder / candidate


def folder_file(folder: Path, path: object) -> Path | None:
    """The recorded path resolved when it lies inside the audited folder (after `..` and symlinks); None when it
    lies outside (an absolute path elsewhere, `..`, a symlink leading out): such a file is never opened."""
    return within(folder, path) if isinstance(path, str) and path else None


def input_file(folder: Path, key: str, path: object) -> Path:
    """An init/mask/control/IP-Adapter image a record names: inside the audited folder, or a file of that name in its
    inputs/ (where a received folder keeps them); else NotTrusted, nothing opened."""
    found = folder_file(folder, path)
    if found is None and isinstance(path, str) and path:
        name = Path(path.replace("\\", "/")).name
        kept = folder_file(folder, f"{INPUTS}/{name}") if name not in ("", ".", "..") else None
        found = kept if kept is not None and kept.is_file() else None
    if found is None:
        raise NotTrusted(OUTSIDE_INPUTS, path, key)
    return found


@dataclass
class IntegrityReport:
    """`files`: one row per named file with its state (ok, missing, changed, unreadable, unverified)."""

    files: pd.DataFrame
    untracked: list[Path] = field(default_factory=list)  # in an output folder, named by no record
    leftovers: list[Path] = field(default_factory=list)  # temp files a killed writer left behind

    @property
    def damaged(self) -> pd.DataFrame:
        """Output files (not inputs) that are missing, changed or unreadable."""
        bad = self.files["state"].isin(["missing", "changed", "unreadable", OUTSIDE])
        return self.files[bad & ~self.files["role"].isin(["input", *USED_FILE_ROLES])]

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
        lines = [f"{_shown(row.state)} {row.role}: {row.path} (job {row.job_id}, {row.log}:{row.line})"
                 for row in self.damaged.itertuples()]
        lines += [f"untracked file (named by no record): {path}" for path in self.untracked]
        lines += [f"leftover temporary file (an interrupted save): {path}" for path in self.leftovers]
        return lines

    def warnings(self) -> list[str]:
        return [f"input {_shown(row.state)}: {row.path} (job {row.job_id}); that job cannot be re-run from its record"
                for row in self.inputs_unavailable.itertuples()]


def _shown(state: str) -> str:
    return "outside the audited folder (not read)" if state == OUTSIDE else state


def _state(path: Path | None, recorded: str | None) -> tuple[str, str | None]:
    if path is None:
        return OUTSIDE, None
    if path.exists() and not path.is_file():  # a folder, a FIFO, a device: never read (a FIFO would block)
        return "unreadable", None
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
    """All files under an output folder except jobs.log, scores.jsonl, logs/, inputs/ and hidden ones; and temp
    files."""
    files, temps = [], []
    for root, dirs, names in os.walk(folder):
        top = Path(root) == folder
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (top and d in IGNORED_FOLDERS))
        for name in sorted(names):
            if name.startswith(TEMP_PREFIX):
                temps.append(Path(root) / name)
            elif not name.startswith(".") and not (top and (name.startswith(JOBS_LOG) or name == SCORES_FILE)):
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
            if role in USED_FILE_ROLES:
                continue  # a LoRA, checkpoint or adapter: file drift checks it, in the user's model folders only
            path = resolve_path(logged.folder, entry["path"])
            inside = folder_file(logged.folder, entry["path"])
            if inside is None and role == "input":
                try:
                    inside = input_file(logged.folder, role, entry["path"])
                except NotTrusted:
                    pass
            named.update([path.absolute(), *([inside] if inside is not None else [])])
            recorded = entry.get("sha256") if isinstance(entry.get("sha256"), str) else None
            state, actual = _state(inside, recorded)
            rows.append((logged.record.get("job_id"), str(logged.log), logged.line, role, str(path), recorded,
                         actual, state))
    untracked, leftovers = [], []
    for folder in folders:
        files, temps = _scan(folder)
        untracked += [path for path in files if path.absolute() not in named]
        leftovers += temps
    return IntegrityReport(files=pd.DataFrame(rows, columns=FILE_COLUMNS), untracked=untracked, leftovers=leftovers)
