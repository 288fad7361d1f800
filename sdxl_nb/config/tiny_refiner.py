"""Builds the embedded `tiny-sdxl-refiner`: SDXL refiner architecture (second text encoder only, aesthetic-score
conditioning), tiny-sdxl's VAE and second text encoder (same bytes, so they are shared), its own fixed UNet."""

from __future__ import annotations

import json
from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.tiny import WEIGHT_SEED, cache_root

TINY_REFINER_ID = "tiny-sdxl-refiner"
TINY_REFINER_VERSION = 1  # bump when the architecture or the weight recipe changes
REFINER_SEED = WEIGHT_SEED + 10
# SDXL refiner's addition embedding: five time ids (original size, crop, aesthetic score), not six.
REFINER_TIME_IDS = 5


def tiny_refiner_dir() -> Path:
    return cache_root() / "models" / f"{TINY_REFINER_ID}-v{TINY_REFINER_VERSION}"


def build_tiny_refiner():
    """A fresh StableDiffusionXLImg2ImgPipeline with the tiny refiner's fixed weights (in memory)."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel

    from sdxl_nb.config.tiny import TINY_UNET_LAYOUT, _build_components

    base = _build_components()  # tiny-sdxl's own recipe: its VAE and text_encoder_2 come out byte-identical
    width = base["text_encoder_2"].config.hidden_size
    time_dim = 8
    torch.manual_seed(REFINER_SEED)
    unet = UNet2DConditionModel(
        **TINY_UNET_LAYOUT,
        cross_attention_dim=width,  # the refiner reads the second encoder alone
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=REFINER_TIME_IDS * time_dim + width,
    )
    return StableDiffusionXLImg2ImgPipeline(
        vae=base["vae"], text_encoder=None, text_encoder_2=base["text_encoder_2"], tokenizer=None,
        tokenizer_2=base["tokenizer_2"], unet=unet, scheduler=base["scheduler"], requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False, add_watermarker=False)


def ensure_tiny_refiner(target: Path | None = None) -> Path:
    """Build and save the tiny refiner once (diffusers folder layout); return its folder."""

    def write(staging: Path) -> None:
        build_tiny_refiner().save_pretrained(staging, safe_serialization=True)
        (staging / "sdxl_nb_model.json").write_text(
            json.dumps({"id": TINY_REFINER_ID, "version": TINY_REFINER_VERSION, "weight_seed": REFINER_SEED})
            + "\n", encoding="utf-8")

    return build_folder_once(Path(target) if target else tiny_refiner_dir(), "model_index.json", write)
