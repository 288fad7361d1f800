"""The JSON header of a .safetensors file, read and checked without loading any tensor; truncated files are named."""

from __future__ import annotations

import struct
from pathlib import Path

from sdxl_nb.config import bounded_json
from sdxl_nb.errors import InputError

# The largest header a real file has is a few MB (an SDXL checkpoint's: ~250 KB); a larger claim is refused
# before anything is read, so a hostile length never allocates.
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_RANK = 16  # dimensions of one tensor (real weights have at most 5)
MAX_DIM = 2**62  # one dimension; larger numbers are no size a file can hold and would make the products huge
# Bits per element of every dtype safetensors defines.
DTYPE_BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
              "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
              "F64": 64, "C64": 64, "I64": 64, "U64": 64}


class _Problem(Exception):
    """Why a header is unusable (the reason alone; the caller names the file)."""


def _read(path: Path, complete: bool) -> tuple[dict, int, int]:
    """(parsed header, header length, file size); _Problem for every way the bytes fail."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise _Problem(f"is truncated ({size} bytes, no safetensors header)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES:
            raise _Problem(f"is not a .safetensors file (its header claims {length} bytes; at most "
                           f"{MAX_HEADER_BYTES} are read)")
        if length > size - 8:
            raise _Problem(f"is truncated or not a .safetensors file ({size} bytes, its header alone would need "
                           f"{length + 8})")
        text = handle.read(length)
    try:  # the entries are checked flat below: json's own recursion guard bounds the depth
        header = bounded_json.loads(text, "its header", max_chars=MAX_HEADER_BYTES, max_depth=None)
    except InputError as exc:
        raise _Problem(f"is not a .safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise _Problem(f"is not a .safetensors file (its header is a JSON {type(header).__name__}, not an object)")
    return header, length, size


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(key: str, entry) -> int:
    """The end offset of one tensor entry after checking its fields; _Problem naming the tensor otherwise."""
    where = f"tensor {key[:80]!r}"
    if not isinstance(entry, dict):
        raise _Problem(f"is not a .safetensors file ({where} is a JSON {type(entry).__name__}, not an object)")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise _Problem(f"has {where} of unknown dtype {str(dtype)[:20]!r} (known: {', '.join(DTYPE_BITS)})")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(_int(dim) and 0 <= dim <= MAX_DIM for dim in shape)):
        raise _Problem(f"has {where} whose shape is not a list of at most {MAX_RANK} sizes from 0 to {MAX_DIM}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= 2**63):
        raise _Problem(f"has {where} whose data_offsets are not two byte offsets [begin, end] with "
                       "0 <= begin <= end")
    elements = 1
    for dim in shape:
        elements *= dim
        if elements > 2**64:  # stop before the product grows past any file
            break
    bits = elements * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
        raise _Problem(f"has {where} whose shape {shape} of {dtype} does not fill its {offsets[1] - offsets[0]} "
                       "bytes")
    return offsets[1]


def _check(header: dict, length: int, size: int, complete: bool) -> None:
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _Problem("has a __metadata__ that is not an object of strings")
            continue
        end = max(end, _check_entry(key, entry))
    if complete and size < 8 + length + end:
        raise _Problem(f"is truncated ({size} of {8 + length + end} bytes)")


def header_problem(path: str | Path) -> str | None:
    """Why a .safetensors file is unusable (the header reader's one line, naming the file), or None; a file of
    another kind is not read here (None)."""
    if not str(path).endswith(".safetensors"):
        return None
    try:
        safetensors_header(path)
    except (InputError, OSError) as exc:
        return str(exc)
    return None


def safetensors_header(path: str | Path, *, complete: bool = True) -> dict:
    """The JSON header of a .safetensors file: {key: {"dtype", "shape", "data_offsets"}, "__metadata__"?}.

    Every entry is checked (a known dtype, a shape of non-negative sizes that fills its byte range, offsets in
    order; metadata strings only), so callers can index it freely. A file that is not one, or whose tensors end
    past its size (a truncated download), is one InputError line naming it; `complete=False` skips the size check
    (what a truncated file was meant to hold).
    """
    path = Path(path)
    try:
        header, length, size = _read(path, complete)
        _check(header, length, size, complete)
    except _Problem as problem:
        raise InputError(f"{path} {problem}") from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc})") from None
    return header
