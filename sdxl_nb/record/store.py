"""Writes outputs safely: PNGs via temp file + no-overwrite link, their hashes, the output folder check."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import portalocker

from sdxl_nb.errors import InputError
from sdxl_nb.record.naming import alternative_name

TEMP_PREFIX = ".sdxl_nb-tmp-"
FOLDER_LOCK = ".sdxl_nb.lock"


@contextmanager
def folder_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """The output folder's lock: writers hold it shared while their temporary files exist; the clean-up
    at the next start holds it exclusive, so it never removes a live writer's file."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / FOLDER_LOCK, "ab") as handle:
        portalocker.lock(handle, portalocker.LOCK_EX if exclusive else portalocker.LOCK_SH)
        yield  # closing the file releases the lock


def check_output_dir(folder: str | os.PathLike) -> Path:
    """Fail early (before any work) when outputs could not be written there; creates nothing."""
    folder = Path(folder).expanduser().absolute()
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"output folder {str(folder)!r} is not usable: {str(probe)!r} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(folder)!r} is not writable (no write permission on {str(probe)!r})")
    return folder


PROBE_PREFIX = ".sdxl_nb-probe-"
PROBE_BYTES = 4096  # what the probe writes: a folder that cannot take this cannot take an image


def open_output_dir(folder: Path) -> list[Path]:
    """Create the output folder (and its parents) and write to it once, before any work; InputError when that
    fails (a read-only or virtual file system such as /proc, no space, no permission), and then nothing is left:
    folders this call created are removed again. Returns the folders it created (for `remove_new_folders`).

    The probe is not a temporary file of TEMP_PREFIX: another process's recovery removes those under the folder
    lock, which the probe does not take (it must not leave a lock file in a folder it may remove again)."""
    created = []
    probe = folder / f"{PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    try:
        missing = [folder, *folder.parents]
        for path in reversed(missing[: next(i for i, p in enumerate(missing) if p.exists())]):
            try:
                path.mkdir()
            except FileExistsError:  # another process made it meanwhile: not ours to remove
                if not path.is_dir():
                    raise
                continue
            created.append(path)
        with open(probe, "xb") as handle:
            handle.write(b"\0" * PROBE_BYTES)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        remove_new_folders(created)
        raise InputError(f"output folder {str(folder)!r} cannot be written: {exc.strerror or type(exc).__name__}"
                         ) from None
    probe.unlink(missing_ok=True)
    return created


def remove_new_folders(created: list[Path]) -> None:
    """Remove folders `open_output_dir` created, deepest first, while they are empty (bad input found later)."""
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return


# zlib level 1: measured on a 1024x1024 photo-like image, 83 ms and 1.59 MB against PIL's default
# level 6 at 575 ms and 1.35 MB. On a GPU that makes an image in about 2 s, level 6 would add a
# fifth to every job; the pixels are lossless either way.
PNG_COMPRESS_LEVEL = 1
# zlib's run-length strategy: after PNG's row filters a photo has few long repeats for the default strategy's
# string matching to find, so matching only runs is as fast and smaller (four 1024x1024 photos: 7-19% smaller
# files than the default strategy at level 1, in about the same time).
PNG_COMPRESS_TYPE = zlib.Z_RLE


def encode_png(image, pnginfo=None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=pnginfo, compress_level=PNG_COMPRESS_LEVEL,
               compress_type=PNG_COMPRESS_TYPE)
    return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_new_file(folder: Path, name: str, data: bytes, on_temp: Callable[[str], None] | None = None,
                   on_published: Callable[[Path], None] | None = None) -> Path:
    """Write data under a new name in folder: never a partial file, never over an existing one.

    The bytes go to a temporary name first and are fsynced; a hard link then publishes them under
    the final name, which fails instead of overwriting if that name exists (we try name-2, name-3...).
    `on_temp(temp name)` runs before the link and `on_published(path)` after it, while the temporary file
    still exists: a job marker notes both, so that a kill between them still finds the published file (it
    shares the leftover temporary file's inode) and a kill after them finds it by name.
    """
    with folder_lock(folder, exclusive=False):
        return _write_new_file(folder, name, data, on_temp, on_published)


def _write_new_file(folder: Path, name: str, data: bytes, on_temp, on_published) -> Path:
    temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(6)}"
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if on_temp is not None:
            on_temp(temp.name)
        for attempt in range(1, 1000):
            target = folder / (name if attempt == 1 else alternative_name(name, attempt))
            try:
                os.link(temp, target)
            except FileExistsError:
                continue
            if on_published is not None:
                on_published(target)
            return target
        raise FileExistsError(f"no free file name for {name} in {folder}")
    finally:
        temp.unlink(missing_ok=True)


def leftover_temp_files(folder: Path) -> list[Path]:
    """Temporary files a killed process may have left (it died between write and link); see recovery.py."""
    return sorted(folder.glob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []
