"""The LoRA registry: .safetensors files in SDXL_NB_LORAS folders (A1111/ComfyUI roots too) and the demo LoRA; no torch."""

from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.name_clash import clash_warning, clashes
from sdxl_nb.config.safetensors_file import safetensors_header
from sdxl_nb.errors import InputError

DEMO_LORA = "tiny-sdxl-lora"
# Where a LoRA folder sits under a tool's root: A1111 (models/Lora) and ComfyUI (models/loras).
ROOT_LAYOUTS = ("models/Lora", "models/loras")


@dataclass(frozen=True)
class LoraFile:
    name: str  # the file name without .safetensors: what <lora:NAME:W> and --lora NAME:W use
    path: str
    size_bytes: int
    source: str  # "embedded" or the folder it was found in

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)

    @property
    def short_hash(self) -> str:
        """A1111's short hash of a LoRA (`Lora hashes` in PNG parameters)."""
        return a1111_lora_hash(self.path)[:12]


@dataclass(frozen=True)
class LoraUse:
    """One LoRA of a job: which file (its content hash) and at which weight."""

    name: str
    path: str
    sha256: str
    weight: float
    short_hash: str = ""  # A1111's short hash, for the PNG's `Lora hashes`

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "weight": self.weight,
                "a1111_hash": self.short_hash}


def search_folders(paths: list[str], layouts: tuple[str, ...]) -> list[Path]:
    """Each path itself, or the layout folders found under it when it is a tool's root."""
    folders = []
    for raw in paths:
        root = Path(raw).expanduser()
        inside = [root / layout for layout in layouts if (root / layout).is_dir()]
        folders += inside or [root]
    return folders


def lora_folders() -> list[Path]:
    return search_folders(settings.lora_paths(), ROOT_LAYOUTS)


def _files(folders: list[Path]) -> list[tuple[Path, Path]]:
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [(folder, path) for path in sorted(folder.rglob("*.safetensors")) if path.is_file()]
    return found


def list_loras(*, demo: bool = True) -> list[LoraFile]:
    """Every LoRA by name: the demo LoRA, then each folder's files (a name found twice: the first folder wins)."""
    loras: dict[str, LoraFile] = {}
    if demo:
        loras[DEMO_LORA] = demo_lora()
    for folder, path in _files(lora_folders()):
        loras.setdefault(path.stem, LoraFile(path.stem, str(path), path.stat().st_size, str(folder)))
    return list(loras.values())


def lora_clashes() -> dict[str, list[str]]:
    """name -> every file of that name (the first is the one used), for names two files share."""
    return clashes([(DEMO_LORA, "the embedded demo LoRA"), *((path.stem, str(path)) for _f, path in _files(lora_folders()))])


def lora_clash_warnings(names) -> list[str]:
    """A job's warnings for the LoRA names it uses that several files share."""
    table = lora_clashes()
    return [line for name in dict.fromkeys(names) for line in clash_warning("LoRA", name, table)]


def demo_lora() -> LoraFile:
    from sdxl_nb.config.tiny_lora import ensure_demo_lora

    path = ensure_demo_lora()
    return LoraFile(DEMO_LORA, str(path), path.stat().st_size, "embedded")


def find_lora(name: str) -> LoraFile:
    """The LoRA of that name (the demo LoRA is built on first use); an unknown name is an InputError."""
    if name == DEMO_LORA:
        return demo_lora()
    for folder, path in _files(lora_folders()):
        if path.stem == name:
            return LoraFile(name, str(path), path.stat().st_size, str(folder))
    known = [lora.name for lora in list_loras(demo=False)]
    where = (f" in {', '.join(str(f) for f in lora_folders())}" if lora_folders()
             else f" ({settings.LORAS} is not set)")
    raise InputError(f"unknown LoRA {name!r}{where}; accepted: {', '.join([DEMO_LORA, *known])}")


_HASHES: dict[tuple, str] = {}
_HASH_LOCK = threading.Lock()


def _cached_hash(path: str | Path, kind: str, compute) -> str:
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), kind, stat.st_size, stat.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    value = compute(Path(path))
    with _HASH_LOCK:
        _HASHES[key] = value
    return value


def _sha256_from(path: Path, offset: int = 0) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(offset)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The whole file's sha256 (cached per path, size and modification time)."""
    return _cached_hash(path, "sha256", _sha256_from)


def a1111_lora_hash(path: str | Path) -> str:
    """A1111's LoRA hash: the file's `sshs_model_hash` metadata, else the sha256 of the bytes after the
    safetensors header (kohya's "addnet" hash); A1111 shows its first 12 hex digits."""
    def compute(file: Path) -> str:
        header = safetensors_header(file)
        metadata = header.get("__metadata__") or {}
        if metadata.get("sshs_model_hash"):
            return str(metadata["sshs_model_hash"])
        with open(file, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
        return _sha256_from(file, 8 + length)

    return _cached_hash(path, "addnet", compute)


def lora_use(name: str, weight: float) -> LoraUse:
    """A named LoRA resolved to its file, checked (a truncated file is an InputError) and hashed."""
    lora = find_lora(name)
    try:
        safetensors_header(lora.path)
    except (InputError, OSError) as exc:
        raise InputError(f"LoRA {name!r} is unusable: {exc}") from None
    return LoraUse(name=lora.name, path=lora.path, sha256=lora.sha256, weight=weight, short_hash=lora.short_hash)
