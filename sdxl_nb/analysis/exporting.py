"""A run as a shareable table: one row per image with its settings, scores and image (Parquet or a `datasets` folder)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from sdxl_nb.errors import InputError

FORMATS = ("parquet", "hf")
IMAGE_MODES = ("bytes", "path")
# Python values (lists, dicts) have no Parquet type of their own; they travel as JSON text.
_JSON_COLUMNS = ("events", "warnings", "notes")


def _one_type(values: pd.Series) -> bool:
    """Whether a column of Python values has one Parquet type (a key of a newer record, or of a stranger's, may hold
    text in one job and a number or a list in another)."""
    import pyarrow as pa

    try:
        kind = pa.array(values.tolist()).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False
    return not pa.types.is_nested(kind)  # lists and dicts travel as JSON text too


def _portable(frame: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Image rows only, columns Parquet can hold: categories as text, Python values as JSON, paths relative."""
    rows = frame[frame["image_path"].notna()].copy()
    if rows.empty:
        raise InputError(f"{folder} holds no recorded images to export")
    for column in rows.columns:
        if isinstance(rows[column].dtype, pd.CategoricalDtype):
            rows[column] = rows[column].astype(object).where(rows[column].notna(), None)
        elif rows[column].dtype == object and (column in _JSON_COLUMNS or not _one_type(rows[column])):
            rows[column] = rows[column].map(lambda v: None if v is None else json.dumps(v, default=str))
    absolute = rows["image_path"].map(Path)
    rows["image_path"] = [os.path.relpath(p, folder) if p.is_relative_to(folder) else str(p) for p in absolute]
    rows = rows.drop(columns=["log"], errors="ignore")  # this machine's path to jobs.log means nothing elsewhere
    rows.attrs = {}
    return rows.reset_index(drop=True), list(absolute)


def _read(folder: Path, path: Path) -> bytes | None:
    """The image's bytes; None for a file gone since it was recorded, or one outside the folder (a received jobs.log
    may name any path: such a file is never read into the export)."""
    from sdxl_nb.config.trusted_folders import within

    inside = within(folder, path)
    try:
        return inside.read_bytes() if inside is not None else None
    except OSError:
        return None


def export(folder: str | os.PathLike, out: str | os.PathLike, to: str = "parquet", images: str = "bytes") -> Path:
    """Write the folder's images as a table to `out`: `to` "parquet" (one file, pandas.to_parquet) or "hf" (a
    Hugging Face `datasets` folder from Dataset.save_to_disk, its `image` column an Image feature). `images`:
    "bytes" embeds each PNG, "path" keeps only `image_path` (relative to the folder). `out` must not exist."""
    from sdxl_nb.analysis.frame import load_jobs
    from sdxl_nb.analysis.sources import log_paths

    if to not in FORMATS:
        raise InputError(f"export format {to!r} is unknown; accepted: {', '.join(FORMATS)}")
    if images not in IMAGE_MODES:
        raise InputError(f"images {images!r} is unknown; accepted: {', '.join(IMAGE_MODES)}")
    out = Path(out).expanduser()
    if out.exists():
        raise InputError(f"{out} already exists; accepted: a new file or folder name")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent} is not a folder; accepted: a path in an existing folder")
    folder = log_paths([folder])[0].parent
    rows, files = _portable(load_jobs(folder), folder)
    if images == "bytes":
        rows["image"] = [_read(folder, path) for path in files]
    if to == "parquet":
        _write_parquet(rows, out)
    else:
        _write_dataset(rows, out)
    return out


def _write_parquet(rows: pd.DataFrame, out: Path) -> None:
    handle, staging = tempfile.mkstemp(prefix=".export-", suffix=".parquet", dir=out.parent)
    os.close(handle)
    try:
        rows.to_parquet(staging, index=False)
        os.replace(staging, out)  # a reader never sees half a file
    finally:
        Path(staging).unlink(missing_ok=True)


def _write_dataset(rows: pd.DataFrame, out: Path) -> None:
    from datasets import Dataset, Image

    if "image" in rows:
        rows["image"] = [None if data is None else {"bytes": data, "path": Path(name).name}
                         for data, name in zip(rows["image"], rows["image_path"], strict=True)]
    dataset = Dataset.from_pandas(rows, preserve_index=False)
    if "image" in rows:
        dataset = dataset.cast_column("image", Image())
    dataset.save_to_disk(str(out))
