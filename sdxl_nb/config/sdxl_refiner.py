"""SDXL refiner 1.0's configs and tokenizer, bundled: a config folder for single-file refiners (A1111's
sd_xl_refiner_1.0.safetensors) with no download; no torch."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.sdxl_base import CONFIGS as BASE_CONFIGS
from sdxl_nb.config.sdxl_base import PAD_TOKENS, write_config_folder
from sdxl_nb.config.tiny import cache_root

SDXL_REFINER_CONFIG_ID = "sdxl-refiner-config"
# Bump when a config below changes, so an old folder in the cache is not reused.
SDXL_REFINER_CONFIG_VERSION = 1

# The public config values of stabilityai/stable-diffusion-xl-refiner-1.0: its VAE, scheduler and bigG text encoder
# are SDXL base's; its UNet is sgm's sd_xl_refiner.yaml (model_channels 384, channel_mult 1,2,4,4, transformer
# depth 4, context 1280, adm_in_channels 2560: five time ids of 256 and the pooled bigG embedding).
CONFIGS = {
    "model_index.json": {
        "_class_name": "StableDiffusionXLImg2ImgPipeline", "_diffusers_version": "0.19.0.dev0",
        "force_zeros_for_empty_prompt": False, "requires_aesthetics_score": True,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": [None, None],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": [None, None],
        "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]},
    "scheduler/scheduler_config.json": BASE_CONFIGS["scheduler/scheduler_config.json"],
    "unet/config.json": {
        "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
        "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [6, 12, 24, 24],
        "block_out_channels": [384, 768, 1536, 1536], "center_input_sample": False, "cross_attention_dim": 1280,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
        "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
        "norm_num_groups": 32, "out_channels": 4, "projection_class_embeddings_input_dim": 2560, "sample_size": 128,
        "transformer_layers_per_block": 4,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "use_linear_projection": True},
    "vae/config.json": BASE_CONFIGS["vae/config.json"],
    "text_encoder_2/config.json": BASE_CONFIGS["text_encoder_2/config.json"],
}


def sdxl_refiner_config_dir() -> Path:
    return cache_root() / "models" / f"{SDXL_REFINER_CONFIG_ID}-v{SDXL_REFINER_CONFIG_VERSION}"


def ensure_sdxl_refiner_config() -> Path:
    """SDXL refiner 1.0's diffusers folder without weights (configs, tokenizer_2, scheduler), built once."""
    return build_folder_once(sdxl_refiner_config_dir(), "model_index.json",
                             lambda staging: write_config_folder(staging, CONFIGS,
                                                                 {"tokenizer_2": PAD_TOKENS["tokenizer_2"]}))
