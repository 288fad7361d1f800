"""Single-file SDXL checkpoints: .safetensors files in SDXL_NB_CHECKPOINTS folders (A1111/ComfyUI roots too); no torch."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.loras import _sha256_from, search_folders
from sdxl_nb.config.safetensors_file import safetensors_header
from sdxl_nb.config.tiny import cache_root
from sdxl_nb.errors import InputError, ModelUnavailableError

# Where checkpoints sit under a tool's root: A1111 (models/Stable-diffusion) and ComfyUI (models/checkpoints).
ROOT_LAYOUTS = ("models/Stable-diffusion", "models/checkpoints")
SUFFIX = ".safetensors"
UNET_PREFIX = "model.diffusion_model."
UNET_FIRST_CONV = UNET_PREFIX + "input_blocks.0.0.weight"
# The tiny model's first UNet convolution (block_out_channels[0] = 32, 4 latent channels): a checkpoint with
# this shape gets the tiny model's defaults (steps, size) and config; with 9 input channels, the tiny inpainting model's.
TINY_FIRST_CONV = [32, 4, 3, 3]
# An inpainting UNet's first convolution reads 9 channels (latents, mask, masked-image latents): SDXL inpainting 0.1,
# and what A1111 (its `hybrid` conditioning) and ComfyUI (model_base inpaint_model) detect from this weight.
INPAINT_IN_CHANNELS = 9
# An SDXL refiner file holds one text encoder, OpenCLIP bigG, as the first embedder (a base file's bigG is the second,
# after CLIP-L under conditioner.embedders.0.transformer.): sgm's sd_xl_refiner.yaml, A1111's and ComfyUI's detection.
REFINER_TEXT_PREFIX = "conditioner.embedders.0.model."


@dataclass(frozen=True)
class CheckpointFile:
    name: str  # the file name without .safetensors: the model id
    path: str
    size_bytes: int
    folder: str  # the folder it was found in

    @property
    def sha256(self) -> str:
        return checkpoint_sha256(self.path)

    @property
    def model_hash(self) -> str:
        """A1111's `Model hash`: the first 10 hex digits of the file's sha256."""
        return self.sha256[:10]


def checkpoint_folders() -> list[Path]:
    return search_folders(settings.checkpoint_paths(), ROOT_LAYOUTS)


def list_checkpoints() -> list[CheckpointFile]:
    """Every .safetensors file of the checkpoint folders, in folder order (two files may share a name)."""
    found = []
    for folder in checkpoint_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*" + SUFFIX)):
            if path.is_file():
                found.append(CheckpointFile(path.stem, str(path), path.stat().st_size, str(folder)))
    return found


def checkpoint_file_name(model_id: str) -> str | None:
    """A checkpoint's file name relative to its folder (`sub/name.safetensors`: what ComfyUI's
    CheckpointLoaderSimple takes), or None when no checkpoint has that id."""
    for file in list_checkpoints():
        if file.name == model_id:
            return Path(file.path).relative_to(file.folder).as_posix()
    return None


def checkpoint_from_path(path: str | Path) -> CheckpointFile:
    """A checkpoint given by its path (a recorded job's file, `convert FILE ...`); a missing file is an InputError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"checkpoint file {path} does not exist")
    if path.suffix != SUFFIX:
        raise InputError(f"{path} is not a {SUFFIX} checkpoint; accepted: a {SUFFIX} file")
    return CheckpointFile(path.stem, str(path), path.stat().st_size, str(path.parent))


def _first_conv_shape(path: str | Path) -> list | None:
    try:
        entry = safetensors_header(path).get(UNET_FIRST_CONV)
    except InputError:
        return None
    return entry.get("shape") if isinstance(entry, dict) and isinstance(entry.get("shape"), list) else None


def looks_tiny(path: str | Path) -> bool:
    """Whether a checkpoint has the embedded tiny model's UNet width, with 4 or 9 input channels (reads the header
    only; False if unreadable)."""
    shape = _first_conv_shape(path)
    return shape is not None and len(shape) == 4 and shape[1] in (4, INPAINT_IN_CHANNELS) and \
        [shape[0], 4, *shape[2:]] == TINY_FIRST_CONV


def looks_inpainting(path: str | Path) -> bool:
    """Whether a checkpoint's UNet is an inpainting one (its first convolution reads 9 channels); header only."""
    shape = _first_conv_shape(path)
    return shape is not None and len(shape) == 4 and shape[1] == INPAINT_IN_CHANNELS


def looks_refiner(path: str | Path) -> bool:
    """Whether a checkpoint is an SDXL refiner (its only text encoder is bigG, the first embedder). Reads the header
    only, even of a truncated file (so that it is refused as the refiner it was meant to be); False if unreadable."""
    try:
        header = safetensors_header(path, complete=False)
    except InputError:
        return False
    return any(key.startswith(REFINER_TEXT_PREFIX) for key in header)


def check_checkpoint_file(path: str | Path) -> dict:
    """The header of a checkpoint after the checks that need no torch: a readable, complete .safetensors file
    with SDXL UNet weights. Raises ModelUnavailableError naming the file."""
    try:
        header = safetensors_header(path)
    except InputError as exc:
        raise ModelUnavailableError(f"checkpoint {exc}") from None
    if UNET_FIRST_CONV not in header:
        raise ModelUnavailableError(f"checkpoint {path} is not an SDXL checkpoint (it has no {UNET_FIRST_CONV}; "
                                    "expected the original single-file layout A1111 and ComfyUI load)")
    return header


# ---- hashing, remembered per path + size + modification time (in this process and on disk) ----
_HASH_FILE = "checkpoint_hashes.json"
_memory: dict[tuple, str] = {}
_lock = threading.Lock()


def _hash_file() -> Path:
    return cache_root() / _HASH_FILE


def _read_hash_cache() -> dict:
    try:
        data = json.loads(_hash_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_hash_cache(data: dict) -> None:
    target = _hash_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".hashes-", dir=target.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(staging, target)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def checkpoint_sha256(path: str | Path) -> str:
    """The file's sha256; a 7 GB checkpoint is hashed once per content (path, size, mtime), not per listing."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _memory:
            return _memory[key]
        entry = _read_hash_cache().get(str(resolved))
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        value = str(entry["sha256"])
    else:
        value = _sha256_from(resolved)
        with _lock:
            data = _read_hash_cache()
            data[str(resolved)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": value}
            _write_hash_cache(data)
    with _lock:
        _memory[key] = value
    return value


# ---- A1111's hashes, for matching a PNG's hash to a file ----
SHORT_HASH_OFFSET, SHORT_HASH_BYTES = 0x100000, 0x10000


def a1111_short_hash(path: str | Path) -> str:
    """A1111's old short model hash (modules/sd_models.py model_hash; the hash sd-webui-controlnet's
    global_state.update_cn_models writes as `Model: NAME [HASH]`): sha256 of the 0x10000 bytes at offset 0x100000,
    first 8 hex digits (a file shorter than 1 MiB hashes what is there: nothing at all, for most)."""
    import hashlib

    with open(path, "rb") as handle:
        handle.seek(SHORT_HASH_OFFSET)
        return hashlib.sha256(handle.read(SHORT_HASH_BYTES)).hexdigest()[:8]


def hash_matches(given: str | None, sha256: str, path: str | Path | None = None) -> bool:
    """Whether a PNG's hash names this file: a prefix of its sha256 (A1111's 10-hex AutoV2 `Model hash`, 12-hex
    `TI hashes`, our older 8-hex ControlNet hash), or with a path, the 8-hex short hash."""
    given = (given or "").strip().lower()
    if len(given) < 8 or any(c not in "0123456789abcdef" for c in given):
        return False
    if sha256.lower().startswith(given):
        return True
    if path is None or len(given) != 8:
        return False
    try:
        return a1111_short_hash(path) == given
    except OSError:
        return False


def checkpoint_with_hash(given: str | None) -> CheckpointFile | None:
    """The first checkpoint file whose A1111 Model hash (AutoV2 or short) is `given`, or None."""
    for checkpoint in list_checkpoints() if given else ():
        try:
            if hash_matches(given, checkpoint.sha256, checkpoint.path):
                return checkpoint
        except OSError:
            continue
    return None
