"""Crash safety for an output folder: a marker per running job; at the next start, what a killed process left
(temporary files, a torn jobs.log tail, an unrecorded job) is cleaned up or recorded, and said in the log."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import portalocker

from sdxl_nb.config import bounded_json
from sdxl_nb.config.trusted_folders import within
from sdxl_nb.record.files import named_files
from sdxl_nb.record.joblog import JOBS_LOG, append_record, encode_record, iter_records
from sdxl_nb.record.naming import timestamp
from sdxl_nb.record.png_record import is_whole
from sdxl_nb.record.store import folder_lock, leftover_temp_files, sha256_file

MARKER_PREFIX = ".sdxl_nb-job-"
OUTPUT_SUFFIXES = (".png", ".gif", ".webp")  # what the product writes into an output folder
TORN_RECORDS = Path("logs") / "torn_records.log"
RECOVERED_ERROR = ("the process running this job ended before recording it (killed or crashed); "
                   "recorded at the next start in this folder with the images it had saved")


class JobMarker:
    """A hidden file holding the job's settings, locked while the job runs; unlocked and left behind only by
    a process that died. Its lock is taken under the folder lock, so the clean-up never sees it unlocked.

    It is also the job's journal: after the first line (the record as it started), one line per change
    (`{"set": {...}}`) and per file, noted before the file is published (`{"file": {role: entry}, "temp":
    name}`) and after (`{"linked": temp, "path": name}`), so the next start can record every file a killed
    job wrote.
    """

    def __init__(self, path: Path, handle):
        self.path, self.handle = path, handle

    @classmethod
    def create(cls, folder: Path, record: dict) -> JobMarker:
        path = folder / f"{MARKER_PREFIX}{record['job_id']}.json"
        with folder_lock(folder, exclusive=False):
            handle = open(path, "xb")
            portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
        try:
            handle.write(encode_record(record) + encode_record({"journal": 1}))
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:  # a full disk: no empty or torn marker is left for the next start to puzzle over
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                handle.close()
            raise
        return cls(path, handle)

    def note(self, entry: dict) -> None:
        """Append one journal line and make it durable before the step it announces."""
        self.handle.write(encode_record(entry))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self, *, remove: bool) -> None:
        """Remove the marker (the job's record is in jobs.log) or leave it for the next start to record."""
        if remove:
            self.path.unlink(missing_ok=True)
        self.handle.close()


@dataclass
class RecoveryReport:
    removed_temp_files: list[str] = field(default_factory=list)
    torn_bytes: int = 0
    recovered_jobs: list[tuple[str, int]] = field(default_factory=list)  # (job id, images found)
    removed_markers: list[str] = field(default_factory=list)  # unreadable, or whose record was already logged

    def __bool__(self) -> bool:
        return bool(self.removed_temp_files or self.torn_bytes or self.recovered_jobs or self.removed_markers)

    def lines(self) -> list[str]:
        lines = []
        if self.removed_temp_files:
            lines.append(f"removed {len(self.removed_temp_files)} leftover temporary file(s) of a killed process: "
                         + ", ".join(self.removed_temp_files))
        if self.torn_bytes:
            lines.append(f"moved a torn jobs.log tail ({self.torn_bytes} bytes, a record cut by a killed process) "
                         f"to {TORN_RECORDS.as_posix()}")
        for job_id, count in self.recovered_jobs:
            lines.append(f"recorded job {job_id} as interrupted with {count} image(s): its process ended before "
                         "recording it")
        if self.removed_markers:
            lines.append(f"removed {len(self.removed_markers)} stale job marker(s): " + ", ".join(self.removed_markers))
        return lines


def recover(folder: str | os.PathLike, *, before: str = "") -> RecoveryReport:
    """Clean up after killed processes in an output folder (safe while other jobs run there); what was done
    is said in logs/app_events.log. `before` names what triggered it (e.g. "job <id>")."""
    report = _recover(Path(folder))
    if report:
        from sdxl_nb.record import events

        events.write_event(folder, f"RECOVERED in {folder}" + (f" (before {before})" if before else ""),
                           *report.lines())
    return report


def _recover(folder: Path) -> RecoveryReport:
    report = RecoveryReport()
    if not folder.is_dir():
        return report
    log = folder / JOBS_LOG
    markers = sorted(folder.glob(f"{MARKER_PREFIX}*"))
    if not leftover_temp_files(folder) and not markers and not _has_torn_tail(log):
        return report  # the common case costs a directory listing and no lock
    with folder_lock(folder, exclusive=True):
        report.torn_bytes = _move_torn_tail(folder, log)
        for marker in markers:  # before the temporary files go: a marker finds its published files by them
            _recover_marker(folder, marker, report)
        for temp in leftover_temp_files(folder):
            temp.unlink(missing_ok=True)
            report.removed_temp_files.append(temp.name)
    return report


def _has_torn_tail(log: Path) -> bool:
    try:
        size = log.stat().st_size
    except FileNotFoundError:
        return False
    if size == 0:
        return False
    with open(log, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) != b"\n"


def _move_torn_tail(folder: Path, log: Path) -> int:
    """Under the jobs.log lock: cut an unfinished last line and keep its bytes in logs/torn_records.log."""
    if not log.exists():
        return 0
    fd = os.open(log, os.O_RDWR)
    try:
        portalocker.lock(fd, portalocker.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return 0
        cut, position = 0, size
        while position > 0:  # the last newline, read backwards in blocks
            start = max(0, position - 65536)
            block = os.pread(fd, position - start, start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            position = start
        tail = os.pread(fd, size - cut, cut)
        side = folder / TORN_RECORDS
        side.parent.mkdir(parents=True, exist_ok=True)
        with open(side, "ab") as handle:
            handle.write(tail + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.ftruncate(fd, cut)
        os.fsync(fd)
        return len(tail)
    finally:
        os.close(fd)


def _logged_job_ids(log: Path) -> set[str]:
    if not log.exists():
        return set()
    return {record.get("job_id") for _, record, _ in iter_records(log) if record}


def _recover_marker(folder: Path, marker: Path, report: RecoveryReport) -> None:
    try:
        handle = open(marker, "rb")
    except FileNotFoundError:
        return  # its job finished meanwhile
    with handle:
        try:
            portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.exceptions.LockException:
            return  # its job is still running
        lines = handle.read().split(b"\n")
        try:
            base = json.loads(lines[0])
            job_id = base["job_id"]
        except (ValueError, KeyError, TypeError):
            # Killed while writing the marker itself: before the run, so no file of the job can exist.
            marker.unlink(missing_ok=True)
            report.removed_markers.append(marker.name)
            return
        if job_id in _logged_job_ids(folder / JOBS_LOG):
            marker.unlink(missing_ok=True)  # killed after its record was appended
            report.removed_markers.append(marker.name)
            return
        journal = _journal(lines[1:])
        if journal is None:  # a marker of an earlier version: its images are found by their PNG chunks
            images, settings, last_write = _job_images(folder, base, marker.stat().st_mtime)
            record = {**base, **settings, "images": images}
        else:
            record, last_write = _replay_journal(folder, base, journal, marker.stat().st_mtime)
            images = record.get("images", [])
        record.pop("image", None)
        record.update(status="interrupted", error=RECOVERED_ERROR, peak_memory_bytes=None,
                      finished_at=datetime.fromtimestamp(last_write).astimezone().isoformat(timespec="milliseconds"),
                      timings={"load_s": None, "generate_s": None, "save_s": None, "total_s": None})
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        record["events"] = [*record.get("events", []),
                            f"recovered {now}: the job's process ended before recording it; {len(images)} "
                            "saved image(s) found by the job's marker"]
        append_record(folder / JOBS_LOG, record)
        marker.unlink(missing_ok=True)
        report.recovered_jobs.append((job_id, len(images)))


def _journal(lines: list[bytes]) -> list[dict] | None:
    """The journal lines after the first (a torn last line is dropped); None for a one-line marker."""
    entries = []
    for line in lines:
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            break  # killed while writing this line: what it announced never happened
    return entries or None


def _replay_journal(folder: Path, base: dict, journal: list[dict], marker_time: float) -> tuple[dict, float]:
    """The record as far as the killed job got: its settings changes and every file it published."""
    record, last_write = dict(base), marker_time
    linked = {entry["linked"]: entry["path"] for entry in journal if "linked" in entry}
    for entry in journal:
        if "set" in entry:
            record.update(entry["set"])
        if "file" not in entry:
            continue
        path = folder / linked[entry["temp"]] if entry["temp"] in linked else _published(folder, entry["temp"])
        if path is None or not path.is_file():
            continue  # killed before the link: the file never appeared under its name
        last_write = max(last_write, path.stat().st_mtime)
        for role, item in entry["file"].items():
            item = {**item, "path": path.name}
            if isinstance(record.get(role), list):
                record[role] = [*record[role], item]
            else:
                record[role] = item
    return record, last_write


def _published(folder: Path, temp_name: str) -> Path | None:
    """The file a killed writer linked from this temporary file (the same inode), if it got that far."""
    try:
        inode = (folder / temp_name).stat().st_ino
    except FileNotFoundError:
        return None
    return next((path for path in folder.iterdir()
                 if path.name != temp_name and path.is_file() and path.stat().st_ino == inode), None)


def _job_images(folder: Path, base: dict, marker_time: float) -> tuple[list[dict], dict, float]:
    """The job's saved PNGs (named from its start time; confirmed by the job id in their sdxl_nb chunk)."""
    from PIL import Image, UnidentifiedImageError

    stamp = timestamp(datetime.fromisoformat(base["started_at"]))
    images, settings, last_write = [], {}, marker_time
    for path in sorted(folder.glob(f"{stamp}_*.png")):
        if not path.is_file():  # a FIFO or device under a PNG's name is never opened
            continue
        try:  # Pillow caps each text chunk (MAX_TEXT_CHUNK: ValueError); the JSON is size- and depth-checked
            with Image.open(path) as image:
                chunk = bounded_json.loads(image.text.get("sdxl_nb", "null"), f"{path.name}'s sdxl_nb chunk")
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):  # InputError included
            continue
        if not isinstance(chunk, dict) or chunk.get("job_id") != base["job_id"] or not _image_entry(chunk):
            continue
        settings = chunk  # the chunk holds the settings the run ended with (scheduler config, events)
        images.append({"path": path.name, "sha256": sha256_file(path), "seed": chunk["image"]["seed"],
                       "index": chunk["image"]["index"]})
        last_write = max(last_write, path.stat().st_mtime)
    return sorted(images, key=lambda image: image["index"]), settings, last_write


def _image_entry(chunk: dict) -> bool:
    """Whether the chunk's "image" says which image of the job this is (its index and seed, whole numbers)."""
    image = chunk.get("image")
    return isinstance(image, dict) and is_whole(image.get("seed")) and is_whole(image.get("index"))


@dataclass
class FolderCheck:
    """What `verify_folder` found; `ok` when the folder is consistent."""

    bad_lines: list[str] = field(default_factory=list)  # "line N: problem"
    missing_images: list[str] = field(default_factory=list)  # logged but not on disk
    changed_images: list[str] = field(default_factory=list)  # on disk with another sha256
    unlogged_images: list[str] = field(default_factory=list)  # PNGs no record names ("orphans")
    leftovers: list[str] = field(default_factory=list)  # temporary files and markers of killed processes
    running: list[str] = field(default_factory=list)  # markers of jobs still running (not a problem)

    @property
    def ok(self) -> bool:
        return not (self.bad_lines or self.missing_images or self.changed_images or self.unlogged_images
                    or self.leftovers)


def verify_folder(folder: str | os.PathLike) -> FolderCheck:
    """Audit an output folder: every jobs.log line parses, every logged image exists with its sha256, every
    PNG is logged, nothing temporary is left. (A job that is saving right now has images not logged yet.)"""
    folder = Path(folder)
    check = FolderCheck()
    log = folder / JOBS_LOG
    logged = set()
    if log.exists():
        for number, record, problem in iter_records(log):
            if record is None:
                check.bad_lines.append(f"line {number}: {problem}")
                continue
            for role, entry in named_files(record):
                if Path(entry["path"]).is_absolute():
                    continue  # an input kept elsewhere: not this folder's to check
                logged.add(entry["path"])
                path = within(folder, entry["path"])
                if path is None and role == "input":
                    continue  # an input named by `..` or `~`: kept elsewhere too, and never opened
                if path is None:  # `..` or a symlink leading out of the folder: never opened
                    check.missing_images.append(f"{entry['path']} (outside the folder; not read)")
                elif not path.is_file():
                    check.missing_images.append(entry["path"])
                elif entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                    check.changed_images.append(entry["path"])
    check.unlogged_images = sorted(p.name for p in folder.iterdir() if p.is_file()
                                   and p.suffix.lower() in OUTPUT_SUFFIXES and p.name not in logged) if folder.is_dir() else []
    check.leftovers = [p.name for p in leftover_temp_files(folder)]
    for marker in sorted(folder.glob(f"{MARKER_PREFIX}*")):
        (check.running if _is_locked(marker) else check.leftovers).append(marker.name)
    return check


def _is_locked(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            portalocker.lock(handle, portalocker.LOCK_EX | portalocker.LOCK_NB)
    except portalocker.exceptions.LockException:
        return True
    except FileNotFoundError:
        pass
    return False
