"""logs/app_events.log: the human-readable trail (model loads, warnings, errors, one block per job)."""

from __future__ import annotations

import errno
import os
import unicodedata
from datetime import datetime
from pathlib import Path

import portalocker

from sdxl_nb.record.files import output_paths
from sdxl_nb.record.secrets import mask

EVENTS_LOG = Path("logs") / "app_events.log"


def events_log_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / EVENTS_LOG


_NAMED = {"\n": "\\n", "\r": "\\r"}
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))  # direction overrides: reorder what a reader sees


def escape(text: str) -> str:
    """One line of text whatever it holds: line breaks (\\n, \\r, U+0085, U+2028...), other control characters and
    direction overrides are written as escapes, so text a user typed cannot start a line of its own (a fake
    `RECOVERED ...` or `MODEL LOADED ...`). Tabs stay; jobs.log keeps the exact text."""
    def one(char: str) -> str:
        if char in _NAMED:
            return _NAMED[char]
        if char != "\t" and (unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or ord(char) in _BIDI):
            return f"\\u{ord(char):04x}"
        return char

    return "".join(one(char) for char in text) if not text.isprintable() else text


def write_event(out_dir: str | os.PathLike, *lines: str) -> None:
    """Append a timestamped block in one locked write (readable even with several writers); secrets masked, each
    line escaped (`escape`): the block's lines are exactly the lines given. On a full disk the block is cut back
    and OSError raised, so no torn block is left either."""
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
    lines = tuple(escape(mask(str(line))) for line in lines)
    text = "".join(f"[{stamp}] {lines[0]}\n" if i == 0 else f"    {line}\n" for i, line in enumerate(lines))
    path = events_log_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        portalocker.lock(fd, portalocker.LOCK_EX)
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, f"short write to {path}")
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)  # releases the lock


def try_write_event(out_dir: str | os.PathLike, *lines: str) -> bool:
    """write_event for lines the job does not depend on (a load time, a mirror failure): False when the disk
    refused them, instead of failing a job whose record is the source of truth."""
    try:
        write_event(out_dir, *lines)
    except OSError:
        return False
    return True


def job_block(record: dict) -> list[str]:
    """The per-job lines: settings, PROMPT, NEG and SAVED FILES."""
    head = (f"MODEL={record['model']['id']}, STEPS={record['steps']}, SCHEDULER={record['scheduler']['name']}, "
            f"{record['width']}x{record['height']}, BATCH={record['batch']}, STYLE={record['style']['name']}, "
            f"MODE={record['mode']}, STATUS={record['status']}, JOB={record['job_id']}")
    lines = [head, f"PROMPT: {record['styled_prompt']}", f"NEG: {record['effective_negative_prompt']}",
             "SAVED FILES: " + (", ".join(output_paths(record)) or "(none)")]
    lines += [f"WARNING: {w}" for w in record.get("warnings", [])]
    if record.get("error"):
        lines.append(f"ERROR: {record['error']}")
    return lines
