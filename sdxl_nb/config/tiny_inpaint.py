"""Builds the embedded `tiny-sdxl-inpaint`: tiny-sdxl with a 9-channel UNet (latents, mask, masked-image latents), as
diffusers/stable-diffusion-xl-1.0-inpainting-0.1 is SDXL base with one; fixed random weights."""

from __future__ import annotations

import json
from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.checkpoints import INPAINT_IN_CHANNELS
from sdxl_nb.config.tiny import WEIGHT_SEED, cache_root

TINY_INPAINT_ID = "tiny-sdxl-inpaint"
TINY_INPAINT_VERSION = 1  # bump when the architecture or the weight recipe changes
INPAINT_SEED = WEIGHT_SEED + 20


def tiny_inpaint_dir() -> Path:
    return cache_root() / "models" / f"{TINY_INPAINT_ID}-v{TINY_INPAINT_VERSION}"


def build_tiny_inpaint():
    """A fresh StableDiffusionXLInpaintPipeline with the tiny inpainting model's fixed weights (in memory): tiny-sdxl's
    text encoders, tokenizers, VAE and scheduler (byte-identical), its own 9-channel UNet (4 latent channels, the
    mask, 4 masked-image latent channels: what the pipeline concatenates when unet.config.in_channels == 9)."""
    import torch
    from diffusers import StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    from sdxl_nb.config.tiny import TINY_UNET_LAYOUT, _build_components

    components = _build_components()
    base = components["unet"].config
    torch.manual_seed(INPAINT_SEED)
    components["unet"] = UNet2DConditionModel(
        **{**TINY_UNET_LAYOUT, "in_channels": INPAINT_IN_CHANNELS},
        cross_attention_dim=base.cross_attention_dim,
        addition_embed_type=base.addition_embed_type,
        addition_time_embed_dim=base.addition_time_embed_dim,
        projection_class_embeddings_input_dim=base.projection_class_embeddings_input_dim,
    )
    return StableDiffusionXLInpaintPipeline(**components, add_watermarker=False)


def ensure_tiny_inpaint(target: Path | None = None) -> Path:
    """Build and save the tiny inpainting model once (diffusers folder layout); return its folder."""

    def write(staging: Path) -> None:
        build_tiny_inpaint().save_pretrained(staging, safe_serialization=True)
        (staging / "sdxl_nb_model.json").write_text(
            json.dumps({"id": TINY_INPAINT_ID, "version": TINY_INPAINT_VERSION, "weight_seed": INPAINT_SEED})
            + "\n", encoding="utf-8")

    return build_folder_once(Path(target) if target else tiny_inpaint_dir(), "model_index.json", write)
