"""A job as code: the standalone diffusers script that re-creates a recorded job's images (see docs/CODE.md)."""

from __future__ import annotations

import os
from pathlib import Path

from sdxl_nb.codegen.model_files import NotWritable
from sdxl_nb.errors import InputError

__all__ = ["NotWritable", "code", "find_record"]


def find_record(target, out_dir: str | os.PathLike | None = None) -> tuple[dict, Path]:
    """(record, output folder) of a job: a record dict (its folder is `out_dir`), a job's result (generate's, or a
    LoggedRecord), a saved image's path (the record in its folder's jobs.log naming it), or a job id or unique
    prefix in `out_dir`'s jobs.log."""
    from sdxl_nb.analysis import read_logged_records
    from sdxl_nb.audit.rerun import select_for_rerun
    from sdxl_nb.jobs.pipeline import default_output_dir

    if isinstance(target, dict):
        return target, Path(out_dir or default_output_dir())
    if isinstance(getattr(target, "record", None), dict):  # a generate() result, or a LoggedRecord
        folder = getattr(target, "folder", None)
        paths = getattr(target, "paths", None) or []
        return target.record, Path(folder or (Path(paths[0]).parent if paths else out_dir or default_output_dir()))
    if isinstance(target, os.PathLike) or (isinstance(target, str) and Path(target).suffix.lower() == ".png"):
        image = Path(target)
        if not image.is_file():
            raise InputError(f"image {image} does not exist; accepted: a saved image, a job id, or a record")
        records, _problems = read_logged_records(image.parent)
        for logged in reversed(records):
            if any(isinstance(e, dict) and Path(str(e.get("path", ""))).name == image.name
                   for e in logged.record.get("images") or []):
                return logged.record, logged.folder
        raise InputError(f"no job in {image.parent / 'jobs.log'} saved {image.name}")
    if not isinstance(target, str) or not target:
        raise InputError(f"{target!r} names no job; accepted: a job id, a saved image's path, or a record")
    folder = Path(out_dir or default_output_dir())
    if not (folder / "jobs.log").is_file():
        raise InputError(f"{folder} has no jobs.log; give the job's output folder (--out-dir)")
    records, _problems = read_logged_records(folder)
    (logged,) = select_for_rerun(records, job_ids=(target,))
    return logged.record, logged.folder


def code(target, out: str | os.PathLike | None = None, *, out_dir: str | os.PathLike | None = None) -> str:
    """The standalone script (diffusers, no sdxl_nb) that re-creates a job's images bit for bit on this machine.

    `target`: a job id (or unique prefix) in `out_dir`'s jobs.log, a saved image's path, a job's result (what
    generate() returns) or a record dict. With
    `out` the script is also written there. A job that cannot be written as plain code raises NotWritable (one
    line saying why) and nothing is written.
    """
    from sdxl_nb.codegen.script import job_script

    record, folder = find_record(target, out_dir)
    text = job_script(record, folder)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text
