"""What a re-run reads of a record's files: the one error, the trusted-folder lookup, checked inputs and files."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from sdxl_nb.audit.integrity import input_file
from sdxl_nb.config.input_image import InputImage
from sdxl_nb.config.limits import MAX_INPUT_BYTES
from sdxl_nb.config.trusted_folders import trusted_model_file
from sdxl_nb.record.store import sha256_file

RECORD_SHOWN = 200  # characters of a recorded value a re-run's note quotes (png_record.shown cuts the rest)


class ReplayError(Exception):
    """A record that cannot be re-run as it stands; the message is one line saying why."""


# A model file recorded outside the user's folders, found in them by name and sha256: said in the re-run's notes.
FOUND: ContextVar[list[str] | None] = ContextVar("sdxl_nb_found_in_your_folders", default=None)


def trusted(path: object, kind: str, sha256: object, what: str, digest=None) -> Path:
    """The file to load for a recorded model file (config.trusted_folders.trusted_model_file): the recorded one in the
    user's folders, else the user's own file of the same name and sha256 (noted), else NotTrusted."""
    found, note = trusted_model_file(path, kind, sha256, what, digest)
    notes = FOUND.get()
    if note and notes is not None:
        notes.append(note)
    return found


def recorded_size(value: object) -> tuple[int, int] | None:
    """A recorded [width, height] (None when the record has no usable one)."""
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 20 for v in value)):
        return value[0], value[1]
    return None


def recorded_input(record: dict, key: str, folder: Path) -> InputImage | None:
    entry = record.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ReplayError(f"the record's {key} has no path")
    path = input_file(folder, key, entry["path"])
    actual = checked_file(path, entry.get("sha256"), key, MAX_INPUT_BYTES)
    size = recorded_size(entry.get("size"))
    if size is None:
        from PIL import Image

        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's ways of saying "not a readable image"
            raise ReplayError(f"{key} {path} is not a readable image ({exc})") from None
    return InputImage(path=str(path), sha256=actual, size=size)


def entries(record: dict, key: str) -> list:
    """A record's list of used files (LoRAs, embeddings, ControlNets, IP-Adapter images); [] when it has none."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReplayError(f"the record's {key} is not a list (got {type(value).__name__})")
    return value


def checked_file(path: Path, recorded: object, what: str, max_bytes: int | None = None) -> str:
    if not path.is_file():
        raise ReplayError(f"{what} ({path}) is missing; the job cannot be re-run from its record")
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise ReplayError(f"{what} ({path}) is larger than {max_bytes >> 20} MiB; an input image is not read")
    actual = sha256_file(path)
    if isinstance(recorded, str) and actual != recorded:
        raise ReplayError(f"{what} ({path}) changed since the job (sha256 {actual[:12]}..., recorded {recorded[:12]}...)")
    return actual
