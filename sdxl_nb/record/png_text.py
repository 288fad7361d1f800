"""A PNG's text chunks (tEXt, zTXt, iTXt) read with caps: file size, text per chunk, one chunk per key."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

from sdxl_nb.config.limits import MAX_INPUT_BYTES
from sdxl_nb.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# One text chunk's cap, decompressed (the same as Pillow's PngImagePlugin.MAX_TEXT_CHUNK, which stops the whole
# image instead): our records and A1111's parameters are a few KB; a chunk past it is said, not read.
MAX_TEXT_CHUNK = 1 << 20
MAX_PNG_BYTES = MAX_INPUT_BYTES  # a PNG read whole, as an init image is
_TEXT_KINDS = (b"tEXt", b"zTXt", b"iTXt")


def read_png_file(path: str | os.PathLike) -> bytes:
    """The bytes of a PNG file; InputError when it is not a regular file or is past MAX_PNG_BYTES (a device, a
    FIFO or a huge file is never read)."""
    path = Path(path)
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer; fstat then refuses it
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"{path} is not a regular file; PNG Info reads PNG files")
            if info.st_size > MAX_PNG_BYTES:
                raise InputError(f"{path} is {info.st_size:,} bytes; PNG Info reads files up to {MAX_PNG_BYTES:,}")
            data = handle.read(MAX_PNG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_PNG_BYTES:  # grew while read
        raise InputError(f"{path} is over {MAX_PNG_BYTES:,} bytes; PNG Info reads files up to that")
    return data


def check_png(data: bytes) -> None:
    """InputError (one line) unless `data` starts as a PNG; a JPEG or WebP is named as what it is."""
    if len(data) > MAX_PNG_BYTES:
        raise InputError(f"the file is {len(data):,} bytes; PNG Info reads files up to {MAX_PNG_BYTES:,}")
    if data.startswith(PNG_SIGNATURE):
        return
    from PIL import Image, UnidentifiedImageError

    try:  # the header only: nothing is decoded
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputError("not a readable image; PNG Info reads PNG files") from None
    raise InputError(f"a {kind} image carries no PNG text chunks; PNG Info reads PNG files")


def text_chunks(data: bytes, keys: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """({key: text} for the wanted keys, ["not read: why", ...]); InputError when `data` is not a PNG.

    One pass over the chunks; only wanted keys are decompressed, each at most MAX_TEXT_CHUNK, and only the first
    chunk of a key is read (a file of many copies costs one), so the work is bounded by the file's size."""
    check_png(data)
    view = memoryview(data)
    found: dict[str, str] = {}
    seen: set[str] = set()
    problems: list[str] = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        start, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):
            problems.append("not read: the rest of the file (it ends inside a chunk: a truncated PNG)")
            break
        if kind == b"IEND":
            break
        pos = end + 4
        if kind not in _TEXT_KINDS:
            continue
        body = view[start:end]
        key = bytes(body[:80]).split(b"\0", 1)[0].decode("latin-1")
        if key not in keys:
            continue
        if key in seen:
            problems.append(f"not read: a second '{key}' chunk (only the first one is read)")
            continue
        seen.add(key)
        if zlib.crc32(kind + body) != struct.unpack_from(">I", data, end)[0]:
            problems.append(f"not read: the '{key}' chunk (its checksum is wrong: a damaged file)")
            continue
        try:
            found[key] = _text(kind, bytes(body[len(key) + 1:]))
        except ValueError as exc:
            problems.append(f"not read: the '{key}' chunk ({exc})")
    return found, problems


def _text(kind: bytes, body: bytes) -> str:
    """A text chunk's text after its keyword; ValueError (the reason) when it cannot be read within the cap."""
    if kind == b"tEXt":
        if len(body) > MAX_TEXT_CHUNK:
            raise ValueError(f"{len(body):,} bytes of text; at most {MAX_TEXT_CHUNK:,} are read")
        return body.decode("latin-1")
    if kind == b"zTXt":
        if body[:1] != b"\0":
            raise ValueError("an unknown compression method")
        return _inflate(body[1:]).decode("latin-1")
    # iTXt: compression flag, method, language tag \0, translated keyword \0, UTF-8 text
    if len(body) < 2:
        raise ValueError("a cut-off iTXt chunk")
    flag, method, rest = body[0], body[1], body[2:]
    parts = rest.split(b"\0", 2)
    if len(parts) < 3:
        raise ValueError("a cut-off iTXt chunk")
    text = parts[2]
    if flag:
        if method != 0:
            raise ValueError("an unknown compression method")
        text = _inflate(text)
    elif len(text) > MAX_TEXT_CHUNK:
        raise ValueError(f"{len(text):,} bytes of text; at most {MAX_TEXT_CHUNK:,} are read")
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("its text is not UTF-8") from None


def _inflate(compressed: bytes) -> bytes:
    """zlib data inflated to at most MAX_TEXT_CHUNK bytes: a tiny chunk that inflates to gigabytes stops there."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, MAX_TEXT_CHUNK + 1)
    except zlib.error:
        raise ValueError("its compressed text is damaged") from None
    if len(text) > MAX_TEXT_CHUNK:
        raise ValueError(f"over {MAX_TEXT_CHUNK:,} bytes when decompressed; at most that is read")
    return text
