"""Builds the embedded `tiny-sdxl-controlnet`: a ControlNet of tiny-sdxl's UNet with fixed, visible random weights."""

from __future__ import annotations

import json
from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.tiny import cache_root, ensure_tiny_model

TINY_CONTROLNET_ID = "tiny-sdxl-controlnet"
TINY_CONTROLNET_VERSION = 1  # bump when the recipe changes, so an old cache is not reused
WEIGHT_SEED = 20240303
# The zero convolutions get weights of this spread: a trained ControlNet's residuals are of the order of the
# UNet's activations; these make the tiny one's effect plain in a 64 px, 2-step image.
ZERO_CONV_STD = 0.5


def tiny_controlnet_dir() -> Path:
    return cache_root() / "controlnets" / f"{TINY_CONTROLNET_ID}-v{TINY_CONTROLNET_VERSION}"


def build_tiny_controlnet():
    """ControlNetModel.from_unet(tiny-sdxl's UNet), its zero convolutions given deterministic non-zero weights.

    from_unet zero-initialises them (a fresh ControlNet changes nothing), which would make every test of the
    ControlNet's effect pass whether or not it runs.
    """
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(ensure_tiny_model() / "unet")
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32, 32))
    generator = torch.Generator("cpu").manual_seed(WEIGHT_SEED)
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                  controlnet.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for conv in zero_convs:
            for parameter in conv.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * ZERO_CONV_STD)
    return controlnet


def ensure_tiny_controlnet(target: Path | None = None) -> Path:
    """Build and save the tiny ControlNet once (diffusers folder: config.json + safetensors); its folder."""

    def write(staging: Path) -> None:
        build_tiny_controlnet().save_pretrained(staging, safe_serialization=True)
        (staging / "sdxl_nb_model.json").write_text(json.dumps(
            {"id": TINY_CONTROLNET_ID, "version": TINY_CONTROLNET_VERSION, "weight_seed": WEIGHT_SEED}) + "\n",
            encoding="utf-8")

    return build_folder_once(Path(target) if target else tiny_controlnet_dir(), "config.json", write)
