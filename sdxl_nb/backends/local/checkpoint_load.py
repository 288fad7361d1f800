"""Loads single-file SDXL checkpoints offline (diffusers' from_single_file with a local config folder) and writes them."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

import sdxl_nb.backends.local.loading  # noqa: F401  (quiets transformers/diffusers before they speak)
from sdxl_nb.backends.local.checkpoint_keys import (
    CLIP_G_PREFIX,
    CLIP_L_PREFIX,
    REFINER_CLIP_G_PREFIX,
    original_state_dict,
)
from sdxl_nb.config.checkpoints import INPAINT_IN_CHANNELS, check_checkpoint_file, looks_inpainting, looks_refiner
from sdxl_nb.config.registry import _cached_sdxl_repos, _snapshot, cached_unet_in_channels
from sdxl_nb.config.sdxl_base import ensure_sdxl_base_config
from sdxl_nb.config.sdxl_inpaint import SDXL_INPAINT_REPO, ensure_sdxl_inpaint_config
from sdxl_nb.config.sdxl_refiner import ensure_sdxl_refiner_config
from sdxl_nb.config.tiny import TINY_MODEL_ID, ensure_tiny_model
from sdxl_nb.config.tiny_inpaint import TINY_INPAINT_ID, ensure_tiny_inpaint
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID, ensure_tiny_refiner
from sdxl_nb.errors import ModelUnavailableError, one_line

SDXL_BASE_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
SDXL_REFINER_REPO = "stabilityai/stable-diffusion-xl-refiner-1.0"
_expected: dict[str, dict[str, list[int]]] = {}  # config folder -> {original key: shape}


def expected_shapes(config_folder: Path) -> dict[str, list[int]]:
    """{original key: shape} of the SDXL pipeline a config folder describes (meta tensors: no weights, no memory)."""
    key = str(config_folder)
    if key not in _expected:
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_folder / "unet"))
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(config_folder / "vae"))
            # a refiner's folder has no first text encoder (its file: bigG alone, as the first embedder)
            text_encoder = (CLIPTextModel(CLIPTextConfig.from_pretrained(config_folder / "text_encoder"))
                            if (config_folder / "text_encoder" / "config.json").is_file() else None)
            text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(config_folder / "text_encoder_2"))
        state = original_state_dict(unet, vae, text_encoder, text_encoder_2)
        _expected[key] = {name: list(value.shape) for name, value in state.items()}
    return _expected[key]


def _cached_candidates() -> list[tuple[str, Path]]:
    """(repo id, snapshot) of every cached SDXL pipeline (not a refiner) with every config a checkpoint needs,
    SDXL base first."""
    cached = []
    for repo_id in sorted(_cached_sdxl_repos(), key=lambda repo: repo != SDXL_BASE_REPO):
        try:
            snapshot, _commit = _snapshot(repo_id)
        except ModelUnavailableError:
            continue
        if all((snapshot / part / "config.json").is_file() for part in ("unet", "vae", "text_encoder", "text_encoder_2")):
            cached.append((repo_id, snapshot))
    return cached


def _config_candidates() -> list[tuple[str, Path]]:
    """(name, folder) of every local SDXL pipeline whose configs can describe a checkpoint, first match wins: the
    tiny model, SDXL base in the Hugging Face cache, the bundled SDXL base configs, then other cached SDXL
    pipelines (configs and tokenizers suffice; no weight is read). A cached fine-tune of the same shapes comes
    after SDXL base so that its scheduler (a turbo model's, say) is not given to every checkpoint."""
    cached = _cached_candidates()
    base = [entry for entry in cached if entry[0] == SDXL_BASE_REPO]
    others = [entry for entry in cached if entry[0] != SDXL_BASE_REPO]
    return [(TINY_MODEL_ID, ensure_tiny_model()), *base, ("bundled SDXL base", ensure_sdxl_base_config()), *others]


def _difference(header: dict, expected: dict[str, list[int]]) -> str | None:
    for key, shape in expected.items():
        entry = header.get(key)
        if entry is None:
            return f"no {key}"
        if list(entry["shape"]) != shape:
            return f"{key} has shape {entry['shape']}, expected {shape}"
    return None


def _refiner_candidates() -> list[tuple[str, Path]]:
    """(name, folder) of every local SDXL refiner whose configs can describe a single-file refiner: the tiny
    refiner, SDXL refiner 1.0 in the Hugging Face cache, the bundled SDXL refiner 1.0 configs, other cached ones."""
    cached = []
    for repo_id, refiner in sorted(_cached_sdxl_repos().items(), key=lambda item: item[0] != SDXL_REFINER_REPO):
        try:
            snapshot, _commit = _snapshot(repo_id) if refiner else (None, None)
        except ModelUnavailableError:
            continue
        if snapshot and all((snapshot / part / "config.json").is_file() for part in ("unet", "vae", "text_encoder_2")):
            cached.append((repo_id, snapshot))
    first = [entry for entry in cached if entry[0] == SDXL_REFINER_REPO]
    others = [entry for entry in cached if entry[0] != SDXL_REFINER_REPO]
    return [(TINY_REFINER_ID, ensure_tiny_refiner()), *first, ("bundled SDXL refiner", ensure_sdxl_refiner_config()),
            *others]


def _inpaint_candidates() -> list[tuple[str, Path]]:
    """(name, folder) of every local SDXL inpainting layout (9-channel UNet) that can describe a single-file inpainting
    checkpoint: the tiny inpainting model, SDXL inpainting 0.1 in the Hugging Face cache, its bundled configs, then
    other cached inpainting pipelines."""
    cached = [(repo_id, snapshot) for repo_id, snapshot in _cached_candidates()
              if cached_unet_in_channels(repo_id) == INPAINT_IN_CHANNELS]
    first = [entry for entry in cached if entry[0] == SDXL_INPAINT_REPO]
    others = [entry for entry in cached if entry[0] != SDXL_INPAINT_REPO]
    return [(TINY_INPAINT_ID, ensure_tiny_inpaint()), *first,
            ("bundled SDXL inpainting", ensure_sdxl_inpaint_config()), *others]


def config_for(path: str | Path, *, refiner: bool = False) -> Path:
    """The local config folder whose architecture matches a checkpoint's every weight (a refiner's among the
    refiners); else ModelUnavailableError naming the file (truncated, not SDXL, or an SDXL layout whose configs are
    not here)."""
    if Path(path).suffix.lower() != ".safetensors":
        raise ModelUnavailableError(f"checkpoint {path} is not a .safetensors file; accepted: a .safetensors "
                                    "checkpoint (other formats are pickles: convert them where they are trusted)")
    # The weights checker's header check (config/safetensors_file.py): every loader below (safe_open, diffusers'
    # from_single_file) opens the file only after it accepted it, and only as .safetensors.
    header = check_checkpoint_file(path)
    differences = []
    # A 9-channel first convolution is an inpainting UNet: only inpainting layouts can describe it (the others are
    # not built for a file they cannot match).
    candidates = (_refiner_candidates() if refiner else
                  _inpaint_candidates() if looks_inpainting(path) else _config_candidates())
    for name, folder in candidates:
        try:
            difference = _difference(header, expected_shapes(folder))
        except (OSError, ValueError, KeyError) as exc:  # a cached folder with unreadable configs is no candidate
            differences.append(f"{name}: unreadable configs ({one_line(exc)})")
            continue
        if difference is None:
            return folder
        differences.append(f"{name}: {difference}")
    raise ModelUnavailableError(f"checkpoint {path} does not match any local SDXL architecture "
                                f"({'; '.join(differences)})")


def _text_encoders(path: str, folder: Path, dtype: torch.dtype):
    # diffusers tells the two CLIP encoders apart by width; the tiny model's are equally wide, so each encoder is
    # converted from its own keys only.
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        parts = {prefix: {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(prefix)}
                 for prefix in (CLIP_L_PREFIX, CLIP_G_PREFIX)}
    common = dict(config=str(folder), torch_dtype=dtype, local_files_only=True)
    return (create_diffusers_clip_model_from_ldm(CLIPTextModel, parts[CLIP_L_PREFIX], subfolder="text_encoder", **common),
            create_diffusers_clip_model_from_ldm(CLIPTextModelWithProjection, parts[CLIP_G_PREFIX],
                                                 subfolder="text_encoder_2", **common))


def load_checkpoint(path: str | Path, dtype: torch.dtype, stage: Callable[[str], None] = lambda _s: None
                    ) -> StableDiffusionXLPipeline:
    """An SDXL pipeline from one .safetensors file, with no network: the configs, tokenizers and scheduler come
    from the local folder of the same architecture. A file that cannot be one gives one line naming it."""
    path = str(Path(path))
    stage("matching the checkpoint's architecture")
    return checkpoint_pipeline(path, config_for(path), dtype, stage)


def checkpoint_pipeline(path: str, folder: Path, dtype: torch.dtype, stage: Callable[[str], None] = lambda _s: None
                        ) -> StableDiffusionXLPipeline:
    """The pipeline of a checkpoint file whose architecture's config folder is `folder` (config_for)."""
    try:
        stage("text encoders")
        text_encoder, text_encoder_2 = _text_encoders(path, folder, dtype)
        stage("UNet and VAE")
        pipe = StableDiffusionXLPipeline.from_single_file(
            path, config=str(folder), local_files_only=True, torch_dtype=dtype, text_encoder=text_encoder,
            text_encoder_2=text_encoder_2, add_watermarker=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelUnavailableError(f"checkpoint {path} could not be loaded: {one_line(exc)}") from None
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if any(p.is_meta for p in getattr(pipe, name).parameters()):  # a weight the file lacked
            raise ModelUnavailableError(f"checkpoint {path} lacks weights of its {name}")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_refiner_checkpoint(path: str | Path, dtype: torch.dtype, stage: Callable[[str], None] = lambda _s: None
                            ) -> StableDiffusionXLImg2ImgPipeline:
    """An SDXL refiner (img2img, bigG alone) from one .safetensors file, offline, its configs from the local refiner
    folder of the same architecture; a file that is no refiner, or cannot be loaded, is one line naming it."""
    from safetensors import safe_open

    path = str(Path(path))
    if not looks_refiner(path):
        check_checkpoint_file(path)  # a truncated or foreign file is named as such first
        raise ModelUnavailableError(f"checkpoint {path} is not an SDXL refiner (it has no {REFINER_CLIP_G_PREFIX} "
                                    "text encoder; a base checkpoint is a model, not a refiner)")
    stage("matching the refiner's architecture")
    folder = config_for(path, refiner=True)
    try:
        stage("text encoder")
        with safe_open(path, framework="pt") as handle:
            text = {key: handle.get_tensor(key) for key in handle.keys() if key.startswith(REFINER_CLIP_G_PREFIX)}
        text_encoder_2 = create_diffusers_clip_model_from_ldm(
            CLIPTextModelWithProjection, text, subfolder="text_encoder_2", config=str(folder), torch_dtype=dtype,
            local_files_only=True)
        stage("UNet and VAE")
        pipe = StableDiffusionXLImg2ImgPipeline.from_single_file(
            path, config=str(folder), local_files_only=True, torch_dtype=dtype, text_encoder=None, tokenizer=None,
            text_encoder_2=text_encoder_2, add_watermarker=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelUnavailableError(f"refiner checkpoint {path} could not be loaded: {one_line(exc)}") from None
    for name in ("unet", "vae", "text_encoder_2"):
        if any(p.is_meta for p in getattr(pipe, name).parameters()):
            raise ModelUnavailableError(f"refiner checkpoint {path} lacks weights of its {name}")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_checkpoint(pipe, out: str | Path, metadata: dict | None = None) -> Path:
    """Write a pipeline's weights as one .safetensors file in the original SDXL key layout (atomically)."""
    from safetensors.torch import save_file

    out = Path(out)
    state = original_state_dict(pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2)
    # No copy of the weights (a 7 GB model is not held twice): views and CPU tensors are written as they are.
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    handle, staging = tempfile.mkstemp(prefix=".converting-", suffix=".safetensors", dir=out.parent)
    os.close(handle)
    try:
        save_file(tensors, staging, metadata={key: str(value) for key, value in (metadata or {}).items()})
        _sort_metadata(staging)
        os.replace(staging, out)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return out


def _sort_metadata(path: str) -> None:
    """Rewrite a fresh .safetensors header with its metadata in key order, in place (same length): safetensors
    writes metadata in hash-map order, which differs per process, so the same weights made different files."""
    import struct

    with open(path, "r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        metadata = header.pop("__metadata__", None)
        if not metadata:
            return
        text = json.dumps({"__metadata__": dict(sorted(metadata.items())), **header}, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
        if len(text) <= length:  # padded with spaces, as safetensors pads its header
            handle.seek(8)
            handle.write(text + b" " * (length - len(text)))


def save_diffusers_folder(pipe, out: str | Path, metadata: dict | None = None) -> Path:
    """Write a pipeline as a diffusers folder (staged, then renamed: never half-written)."""
    out = Path(out)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=out.parent))
    try:
        pipe.save_pretrained(staging, safe_serialization=True)
        if metadata:
            (staging / "sdxl_nb_model.json").write_text(json.dumps(metadata, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():  # an empty folder the user made for it
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out



def load_checkpoint_model(info, _path: Path, device: str, dtype: torch.dtype, stage: Callable[[str], None]):
    """The engine's hook: (pipeline on the device, dedicated VAE record, warnings) for a checkpoint ModelInfo."""
    pipe = load_checkpoint(info.path, dtype, stage)
    stage(f"moving to {device}")
    pipe.to(device)
    return pipe, None, []
