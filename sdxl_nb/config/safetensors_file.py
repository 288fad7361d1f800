"""The JSON header of a .safetensors file, read without loading any tensor; truncated files are named."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from sdxl_nb.errors import InputError


def safetensors_header(path: str | Path, *, complete: bool = True) -> dict:
    """The JSON header of a .safetensors file: {key: {"dtype", "shape", "data_offsets"}, "__metadata__"?}.

    A file that is not one, or whose tensors end past its size (a truncated download), is an InputError;
    `complete=False` skips the size check (what a truncated file was meant to hold).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise InputError(f"{path} is truncated ({size} bytes, no safetensors header)")
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                raise InputError(f"{path} is truncated or not a .safetensors file ({size} bytes, its header "
                                 f"alone would need {length + 8})")
            header = json.loads(handle.read(length))
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except ValueError:
        raise InputError(f"{path} is not a .safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path} is not a .safetensors file")
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if complete and size < 8 + length + end:
        raise InputError(f"{path} is truncated ({size} of {8 + length + end} bytes)")
    return header
