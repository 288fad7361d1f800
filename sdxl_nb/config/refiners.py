"""Refiner models in records and checks: which one a job uses, its revision, the aesthetic scores sent; no torch."""

from __future__ import annotations

from sdxl_nb.config.presets import Presets
from sdxl_nb.config.registry import ModelInfo, checkpoint_record, find_model
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.errors import ModelUnavailableError

# The refiner's aesthetic-score conditioning, as diffusers' pipelines and ComfyUI's CLIPTextEncodeSDXLRefiner
# are used with SDXL 1.0 refiner (positive 6, negative 2.5).
AESTHETIC_SCORE = 6.0
NEGATIVE_AESTHETIC_SCORE = 2.5


def refiner_info(r, presets: Presets, *, local: bool = True) -> ModelInfo | None:
    """The job's refiner (None without one); on a backend that loads here, an unavailable one is refused."""
    if r.refiner is None:
        return None
    info = find_model(r.refiner.id, presets)
    if local and not info.available:
        raise ModelUnavailableError(f"refiner {info.reason}")
    return info


def model_revision(info: ModelInfo) -> str | None:
    """A model's revision as records hold it: the cache commit, or the embedded folder's content hash."""
    if info.source != "embedded":
        return info.revision
    from sdxl_nb.config.embedded_models import embedded_revision

    return embedded_revision(info.id)


def refiner_record(r, presets: Presets) -> dict | None:
    """The record's `refiner`: {id, revision, switch, switch_by, split}, or None for a job without one; `split` (where
    the refiner runs: refiner_split.refiner_plan) is what every backend runs, the audit compares it."""
    info = refiner_info(r, presets, local=False)
    if info is None:
        return None
    from sdxl_nb.backends.local.refiner_split import split_record

    entry = {"id": info.id, "revision": model_revision(info), "switch": r.refiner_switch,
             "switch_by": getattr(r, "refiner_switch_by", None) or "timestep", "split": split_record(r)}
    if info.source == "checkpoint":  # a single file: where it was and its sha256, as the base checkpoint's record;
        # `hash` is A1111's short hash, what `Refiner: NAME [HASH]` shows
        entry.update(checkpoint_record(info), hash=info.model_hash)
    return entry


def embedded_refiner_folder(model_id: str):
    """The folder of an embedded refiner (built on first use)."""
    from sdxl_nb.config.tiny_refiner import ensure_tiny_refiner

    if model_id != TINY_REFINER_ID:
        raise ModelUnavailableError(f"no embedded refiner {model_id!r}; accepted: {TINY_REFINER_ID}")
    return ensure_tiny_refiner()


def refiner_unet_bytes(model_id: str, source: str, dtype: str) -> int:
    """The refiner's UNet bytes in `dtype`, from its weight files (0 when they cannot be read): what the memory
    check adds for a refiner job (its VAE and second text encoder are normally the base's own)."""
    from pathlib import Path

    from sdxl_nb.config.registry import locate_model

    if source == "checkpoint":
        return _checkpoint_unet_bytes(model_id, dtype)
    try:
        folder = Path(embedded_refiner_folder(model_id) if source == "embedded" else locate_model(model_id)[0])
        files = [p for p in (folder / "unet").iterdir() if p.name.endswith((".safetensors", ".bin"))]
    except (OSError, ModelUnavailableError):
        return 0
    half = [p.stat().st_size for p in files if ".fp16." in p.name]
    full = [p.stat().st_size for p in files if p.name.count(".") == 1]
    width = {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype, 4)
    if half and width == 2:
        return sum(half)
    return sum(full) * width // 4 if full else sum(half) * width // 2


def _checkpoint_unet_bytes(model_id: str, dtype: str) -> int:
    """A single-file refiner's UNet bytes in `dtype`, from its header (0 when it cannot be read)."""
    import math

    from sdxl_nb.config.checkpoints import UNET_PREFIX, list_checkpoints
    from sdxl_nb.config.safetensors_file import safetensors_header
    from sdxl_nb.errors import InputError

    width = {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype, 4)
    for file in list_checkpoints():
        if file.name == model_id:
            try:
                header = safetensors_header(file.path)
            except InputError:
                return 0
            return sum(math.prod(entry["shape"]) for key, entry in header.items() if key.startswith(UNET_PREFIX)) * width
    return 0
