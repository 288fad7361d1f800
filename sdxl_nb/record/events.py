"""logs/app_events.log: the human-readable trail (model loads, warnings, errors, one block per job)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import portalocker

from sdxl_nb.record.files import output_paths
from sdxl_nb.record.secrets import mask

EVENTS_LOG = Path("logs") / "app_events.log"


def events_log_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / EVENTS_LOG


def write_event(out_dir: str | os.PathLike, *lines: str) -> None:
    """Append a timestamped block in one locked write (readable even with several writers); secrets masked."""
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
    lines = tuple(mask(line) for line in lines)
    text = "".join(f"[{stamp}] {lines[0]}\n" if i == 0 else f"    {line}\n" for i, line in enumerate(lines))
    path = events_log_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        portalocker.lock(handle, portalocker.LOCK_EX)
        handle.write(text)
        handle.flush()


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
