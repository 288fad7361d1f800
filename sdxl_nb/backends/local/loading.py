"""Loads an SDXL pipeline folder component by component (stages reported), offline, in the chosen dtype."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

# Quiet before diffusers is imported: importing it makes transformers warn about torchvision.
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

import diffusers  # noqa: E402
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: E402

from sdxl_nb import settings  # noqa: E402
from sdxl_nb.config.registry import ModelInfo, locate_model  # noqa: E402
from sdxl_nb.errors import ModelUnavailableError  # noqa: E402

diffusers.utils.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar()

DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float32": torch.float32, "fp32": torch.float32}


def default_device() -> str:
    return settings.device() or ("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: str) -> torch.dtype:
    name = settings.dtype()
    if name:
        return DTYPES[name]
    return torch.float16 if device.startswith("cuda") else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _variant(folder: Path, dtype: torch.dtype) -> str | None:
    # Half-precision weights halve the read when the snapshot ships them.
    if dtype == torch.float32:
        return None
    return "fp16" if any(folder.glob("*.fp16.safetensors")) or any(folder.glob("*.fp16.bin")) else None


def _scheduler_class_name(folder: Path) -> str:
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return index["scheduler"][1]


def model_scheduler(folder: Path):
    """The scheduler saved with a model folder, from its config file (no weights: near-free)."""
    return getattr(diffusers, _scheduler_class_name(folder)).from_pretrained(folder / "scheduler", local_files_only=True)


def load_pipeline(info: ModelInfo, folder: Path, device: str, dtype: torch.dtype,
                  stage: Callable[[str], None]) -> tuple[StableDiffusionXLPipeline, dict | None, list[str]]:
    """Build the pipeline from a local folder; return it, the dedicated VAE used, and warnings."""
    common = dict(torch_dtype=dtype, local_files_only=True)

    def weights(cls, name):
        from sdxl_nb.backends.local.weights import check_weights_folder

        # diffusers/transformers open the folder's weights only after the weights checker accepted each one
        # (a .bin they would read goes through torch.load with weights_only=True there).
        check_weights_folder(folder / name, what=f"model {info.id!r} {name}")
        return cls.from_pretrained(folder / name, variant=_variant(folder / name, dtype), **common)

    stage("text encoders")
    text_encoder = weights(CLIPTextModel, "text_encoder")
    text_encoder_2 = weights(CLIPTextModelWithProjection, "text_encoder_2")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    tokenizer_2 = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
    stage("UNet")
    unet = weights(UNet2DConditionModel, "unet")
    stage("VAE")
    vae, vae_record, warnings = None, None, []
    if info.preset.vae:
        try:
            vae_folder, vae_revision = locate_model(info.preset.vae, need_pipeline=False)
            from sdxl_nb.backends.local.weights import check_weights_folder

            check_weights_folder(vae_folder, what=f"VAE {info.preset.vae!r}")
            vae = AutoencoderKL.from_pretrained(vae_folder, **common)
            vae_record = {"id": info.preset.vae, "revision": vae_revision}
        except ModelUnavailableError:
            if dtype == torch.float16:
                warnings.append(f"dedicated VAE {info.preset.vae} is not in the local cache; using the model's own "
                                "VAE, which can overflow in float16")
    if vae is None:
        vae = weights(AutoencoderKL, "vae")
    scheduler = model_scheduler(folder)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
                                     add_watermarker=False)
    stage(f"moving to {device}")
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, vae_record, warnings
