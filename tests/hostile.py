"""Hostile files a stranger could hand the lab: payloads that write a marker if their code runs, header abuse, deep JSON."""

from __future__ import annotations

import contextlib
import json
import signal
import struct
import warnings
import zlib
from pathlib import Path

import torch


class TorchScriptPayload(torch.nn.Module):
    """A TorchScript module whose __setstate__ (run by torch.jit.load) creates the marker file: code run at load."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.buf = torch.zeros(4, dtype=torch.uint8)

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.marker = state[0]
        self.training = state[1]
        self.buf = torch.from_file(self.marker, shared=True, size=4, dtype=torch.uint8)
        self.buf.fill_(1)


class _Touch:
    """Unpickled, it creates the marker file (pickle's __reduce__: a call made at load)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def torchscript_payload(path: str | Path, marker: str | Path) -> Path:
    """A TorchScript archive (any extension: .pt, .pth, .ckpt, .bin) that writes `marker` when torch.jit.load runs it."""
    path = Path(path)
    with warnings.catch_warnings():  # torch.jit.script is deprecated; the payload still works
        warnings.simplefilter("ignore")
        torch.jit.script(TorchScriptPayload(str(marker))).save(str(path))
    return path


def pickle_payload(path: str | Path, marker: str | Path, *, legacy: bool = False) -> Path:
    """A torch.save file (zip, or the legacy raw-pickle format) whose unpickling creates `marker`."""
    path = Path(path)
    state = {"weight": torch.zeros(2, 2), "evil": _Touch(str(marker))}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def safetensors_bytes(header: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A .safetensors file from any header object (valid or not) and data; `length` overrides the header length."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(text) if length is None else length) + text + data


# name -> (header, data, length override): each one a way a header lies about its file.
ABUSED_HEADERS = {
    "empty-file": (b"", b"", 0),
    "length-past-end": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 10**6),
    "length-huge": ({}, b"", 2**63),
    "not-json": (b"\xff\xfe not json", b"", None),
    "json-list": ([1, 2, 3], b"", None),
    "entry-is-number": ({"w": 7}, b"", None),
    "entry-is-list": ({"w": [1, 2]}, b"", None),
    "offsets-missing": ({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None),
    "offsets-outside": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4000]}}, b"\0" * 4, None),
    "offsets-negative": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"\0" * 4, None),
    "offsets-reversed": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, None),
    "offsets-strings": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, b"\0" * 4, None),
    "dtype-unknown": ({"w": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "shape-mismatch": ({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "shape-negative": ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "shape-not-list": ({"w": {"dtype": "F32", "shape": "big", "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "shape-huge": ({"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "metadata-not-strings": ({"__metadata__": {"a": {"b": [1]}},
                              "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, b"", None),
    "big-number": (b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}',
                   b"\0" * 4, None),
}


def abused_safetensors(folder: str | Path, suffix: str = ".safetensors") -> dict[str, Path]:
    """Every ABUSED_HEADERS file written into `folder` (name + suffix); returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, (header, data, length) in ABUSED_HEADERS.items():
        path = folder / f"{name}{suffix}"
        path.write_bytes(safetensors_bytes(header, data, length=length) if header != b"" or length else b"")
        written[name] = path
    return written


def deep_json(depth: int = 100_000) -> str:
    """JSON nested `depth` levels deep: Python's json recursion fails on it."""
    return "[" * depth + "]" * depth


def cyclic_comfy_graph() -> dict:
    """A ComfyUI API graph whose nodes link to themselves and to each other (a naive walk never ends)."""
    graph = {str(i): {"class_type": "CLIPTextEncode", "inputs": {"text": [str(i), 0], "clip": [str((i + 1) % 40), 0]}}
             for i in range(40)}
    graph["99"] = {"class_type": "KSampler", "inputs": {"positive": ["0", 0], "negative": ["1", 0], "model": ["99", 0],
                                                        "latent_image": ["99", 0], "seed": 1, "steps": 2, "cfg": 5.0}}
    return graph


def png_with_chunks(path: str | Path, chunks: dict[str, str | bytes], *, compressed: bool = True,
                    size: int = 8) -> Path:
    """A small PNG carrying the given text chunks (zTXt when `compressed`, else tEXt), written by hand so that
    no encoder limit stops a hostile chunk from being made."""
    from PIL import Image

    path = Path(path)
    Image.new("RGB", (size, size), (10, 20, 30)).save(path)
    body = path.read_bytes()
    end = body.rindex(b"IEND") - 4  # the IEND chunk's length field
    extra = b""
    for key, value in chunks.items():
        raw = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
        if compressed:
            kind, payload = b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(raw, 9)
        else:
            kind, payload = b"tEXt", key.encode("latin-1") + b"\0" + raw
        extra += struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    path.write_bytes(body[:end] + extra + body[end:])
    return path


@contextlib.contextmanager
def time_bound(seconds: int = 20):
    """Fail instead of hanging when the block runs past `seconds` (generous: a hang, never a timing assertion)."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
