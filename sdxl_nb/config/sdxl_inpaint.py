"""SDXL inpainting 0.1's configs and tokenizers, bundled: a config folder for single-file 9-channel inpainting
checkpoints (A1111/ComfyUI `.safetensors` whose first UNet conv reads 9 channels) with no download; no torch."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.checkpoints import INPAINT_IN_CHANNELS
from sdxl_nb.config.sdxl_base import CONFIGS as BASE_CONFIGS
from sdxl_nb.config.sdxl_base import PAD_TOKENS, write_config_folder
from sdxl_nb.config.tiny import cache_root

SDXL_INPAINT_REPO = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
SDXL_INPAINT_CONFIG_ID = "sdxl-inpaint-config"
# Bump when a config below changes, so an old folder in the cache is not reused.
SDXL_INPAINT_CONFIG_VERSION = 1

# diffusers/stable-diffusion-xl-1.0-inpainting-0.1 is SDXL base fine-tuned with a 9-channel first convolution: every
# config is SDXL base's but the UNet's in_channels and the pipeline class.
CONFIGS = {
    **BASE_CONFIGS,
    "model_index.json": {**BASE_CONFIGS["model_index.json"], "_class_name": "StableDiffusionXLInpaintPipeline",
                         "requires_aesthetics_score": False},
    "unet/config.json": {**BASE_CONFIGS["unet/config.json"], "in_channels": INPAINT_IN_CHANNELS},
}


def sdxl_inpaint_config_dir() -> Path:
    return cache_root() / "models" / f"{SDXL_INPAINT_CONFIG_ID}-v{SDXL_INPAINT_CONFIG_VERSION}"


def ensure_sdxl_inpaint_config() -> Path:
    """SDXL inpainting's diffusers folder without weights (configs, tokenizers, scheduler), built once in the cache."""
    return build_folder_once(sdxl_inpaint_config_dir(), "model_index.json",
                             lambda staging: write_config_folder(staging, CONFIGS, PAD_TOKENS))
