"""An image file a job reads (init image, mask, IP-Adapter reference, control image): its path, content hash and size,
and where a job keeps it: <output folder>/inputs/<sha256>.<ext> (uploads and every job's inputs alike); no torch."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb.errors import InputError

INPUTS_DIR = "inputs"
# The file extension an image is kept under, by its format (an upload must be one of these).
KEPT_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
# What keep_input made inside `uploads_for_one_request` (files, then the folders it had to create).
_MADE: ContextVar[list[Path] | None] = ContextVar("sdxl_nb_uploads_made", default=None)


@dataclass(frozen=True)
class InputImage:
    path: str
    sha256: str
    size: tuple[int, int]


def keep_input(data: bytes, out_dir: str | os.PathLike, extension: str, label: str = "upload") -> Path:
    """Keep image bytes under <out_dir>/inputs/<sha256><extension> so records point at a lasting file.

    The bytes are stored unchanged (the record's sha256 is theirs); the same image twice is one file. A file that
    cannot be written raises InputError naming the folder; the caller has checked that the bytes are an image.
    """
    from sdxl_nb.record.store import check_output_dir, write_new_file

    folder = check_output_dir(out_dir) / INPUTS_DIR
    name = hashlib.sha256(data).hexdigest() + extension
    if (folder / name).is_file():
        return folder / name
    new_folders = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        path = write_new_file(folder, name, data)
    except OSError as exc:
        raise InputError(f"{label} cannot be kept in {folder}: {exc.strerror or exc}") from None
    made = _MADE.get()
    if made is not None:
        made[:0] = [path, *new_folders]  # newest first: removed before the folders holding them
    return path


def kept_copy(image: InputImage, folder: Path, label: str) -> InputImage:
    """The job's own copy of an input image it checked: inputs/<sha256>.<ext> in `folder`, named by that path relative
    to the folder (as the record names it). The file must still hold what was checked (else InputError)."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(image.path).read_bytes()
    except OSError as exc:
        raise InputError(f"{label} {image.path!r} cannot be read any more ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != image.sha256:
        raise InputError(f"{label} {image.path!r} changed while the job started; give it again")
    try:
        with Image.open(io.BytesIO(data)) as opened:  # the header only: the pixels were decoded when it was checked
            kind = str(opened.format or "")
    except (UnidentifiedImageError, OSError):
        kind = ""
    suffix = KEPT_FORMATS.get(kind) or (f".{kind.lower()}" if re.fullmatch(r"[A-Z0-9]{1,8}", kind) else ".img")
    kept = keep_input(data, folder, suffix, label)
    return InputImage(path=f"{INPUTS_DIR}/{kept.name}", sha256=image.sha256, size=image.size)


@contextlib.contextmanager
def uploads_for_one_request() -> Iterator[None]:
    """Images kept inside this block are removed again when it ends with an error, with the folders made for
    them: a request refused after its images were kept (a field only resolve() checks) leaves nothing written.
    An image that was already kept (by an earlier request) is never removed."""
    from sdxl_nb.record.store import FOLDER_LOCK

    made: list[Path] = []
    token = _MADE.set(made)
    try:
        yield
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                if path.is_dir():
                    (path / FOLDER_LOCK).unlink(missing_ok=True)
                    path.rmdir()  # only while empty
                else:
                    path.unlink()
        raise
    finally:
        _MADE.reset(token)
