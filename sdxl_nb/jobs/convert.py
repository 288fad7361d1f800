"""Model conversion: any model -> one .safetensors checkpoint (A1111/ComfyUI layout), a checkpoint -> a diffusers folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdxl_nb.config.checkpoints import SUFFIX, checkpoint_from_path, checkpoint_sha256
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import ModelInfo, checkpoint_model, find_model
from sdxl_nb.errors import InputError, ModelUnavailableError, one_line

DTYPE_NAMES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Conversion:
    source: str  # the model id converted
    out: str  # the file or folder written
    kind: str  # "checkpoint" (one .safetensors file) or "diffusers" (a folder)
    dtype: str
    size_bytes: int
    sha256: str | None  # the written checkpoint's sha256 (None for a folder)

    @property
    def model_hash(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None


def _source(model: str) -> ModelInfo:
    presets = load_presets()
    if model.endswith(SUFFIX) or Path(model).expanduser().is_file():
        return checkpoint_model(checkpoint_from_path(model), presets)
    return find_model(model, presets)


def check_convert(model: str, out: str | Path, dtype: str = "float32") -> tuple[ModelInfo, Path, str]:
    """(source model, output path, kind) after every check that needs no torch; InputError (one line) else."""
    if dtype not in DTYPE_NAMES:
        raise InputError(f"unknown dtype {dtype!r}; accepted: {', '.join(DTYPE_NAMES)}")
    out = Path(out).expanduser()
    kind = "checkpoint" if out.suffix == SUFFIX else "diffusers"
    if out.suffix and kind == "diffusers":
        raise InputError(f"output {out} must be a {SUFFIX} file (a single-file checkpoint) or a folder without "
                         "an extension (a diffusers folder)")
    if not out.parent.is_dir():
        raise InputError(f"the folder of {out} does not exist")
    if kind == "checkpoint" and out.exists():
        raise InputError(f"{out} already exists; choose a new file name (nothing is overwritten)")
    if kind == "diffusers" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder; choose a new folder")
    info = _source(model)
    if not info.available:
        raise ModelUnavailableError(info.reason)
    if info.path and out.resolve() == Path(info.path).resolve():
        raise InputError(f"{out} is the model's own file; choose another output")
    return info, out, kind


def convert(model: str, out: str | Path, *, dtype: str = "float32", on_stage=None) -> Conversion:
    """Write `model` (a model id, or a .safetensors checkpoint's path) as a single-file checkpoint in the original
    SDXL key layout when `out` ends in .safetensors, else as a diffusers folder at `out`.

    Loads on the CPU in `dtype` (float32 keeps every weight bit-exact), apart from the kernel's engine. Bad
    arguments raise InputError before anything is loaded or written; the output appears whole or not at all.
    """
    from sdxl_nb.backends.local.checkpoint_load import (
        load_checkpoint_model,
        save_checkpoint,
        save_diffusers_folder,
    )
    from sdxl_nb.backends.local.loading import DTYPES, load_pipeline
    from sdxl_nb.config.embedded_models import embedded_folder
    from sdxl_nb.config.registry import locate_model
    from sdxl_nb.record.secrets import mask_data

    info, out, kind = check_convert(model, out, dtype)
    stage = on_stage or (lambda _name: None)
    torch_dtype = DTYPES[dtype]
    vae = None
    if info.preset.refiner:  # an SDXL refiner both ways: bigG alone, its first embedder in the single file
        pipe = _load_refiner(info, torch_dtype, stage)
    elif info.source == "checkpoint":
        pipe = load_checkpoint_model(info, Path(info.path), "cpu", torch_dtype, stage)[0]
    else:
        folder = embedded_folder(info.id) if info.source == "embedded" else locate_model(info.id)[0]
        try:
            pipe, vae, _warnings = load_pipeline(info, Path(folder), "cpu", torch_dtype, stage)
        except ModelUnavailableError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ModelUnavailableError(f"model {info.id!r} could not be loaded from {folder}: {one_line(exc)}") from None
    # The file says what it was made from (the dedicated VAE too, when the model's preset names one).
    metadata = mask_data({"sdxl_nb_source": info.id, "sdxl_nb_source_revision": info.revision or "", "dtype": dtype,
                          "sdxl_nb_vae": (vae or {}).get("id") or ""})  # a written file: secrets masked, as every one
    stage("writing")
    if kind == "checkpoint":
        save_checkpoint(pipe, out, metadata)
        return Conversion(info.id, str(out), kind, dtype, out.stat().st_size, checkpoint_sha256(out))
    save_diffusers_folder(pipe, out, metadata)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    return Conversion(info.id, str(out), kind, dtype, size, None)


def _load_refiner(info: ModelInfo, dtype, stage):
    """An SDXL refiner on the CPU: from its single file, or from its diffusers folder (embedded or cached)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    from sdxl_nb.backends.local.checkpoint_load import load_refiner_checkpoint
    from sdxl_nb.config.refiners import embedded_refiner_folder
    from sdxl_nb.config.registry import locate_model

    if info.source == "checkpoint":
        return load_refiner_checkpoint(info.path, dtype, stage)
    folder = embedded_refiner_folder(info.id) if info.source == "embedded" else locate_model(info.id)[0]
    stage("refiner")
    try:
        return StableDiffusionXLImg2ImgPipeline.from_pretrained(folder, torch_dtype=dtype, local_files_only=True,
                                                                add_watermarker=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailableError(f"refiner {info.id!r} could not be loaded from {folder}: {one_line(exc)}") from None
