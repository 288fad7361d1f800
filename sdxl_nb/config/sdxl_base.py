"""SDXL base's configs and tokenizers, bundled: a config folder for single-file checkpoints with no download; no torch."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.tiny import cache_root

SDXL_BASE_CONFIG_ID = "sdxl-base-config"
# Bump when a config below changes, so an old folder in the cache is not reused.
SDXL_BASE_CONFIG_VERSION = 1
_MERGES = Path(__file__).parent / "data" / "clip_merges.txt.gz"

# The public config values of stabilityai/stable-diffusion-xl-base-1.0 (../shared/FORMATS.md, diffusers docs).
_TEXT = dict(attention_dropout=0.0, dropout=0.0, initializer_factor=1.0, initializer_range=0.02,
             layer_norm_eps=1e-05, max_position_embeddings=77, model_type="clip_text_model", vocab_size=49408,
             bos_token_id=0, eos_token_id=2, pad_token_id=1)
CONFIGS = {
    "model_index.json": {
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.19.0.dev0",
        "force_zeros_for_empty_prompt": True,
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]},
    "scheduler/scheduler_config.json": {
        "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
        "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True,
        "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False},
    "unet/config.json": {
        "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
        "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
        "block_out_channels": [320, 640, 1280], "center_input_sample": False, "cross_attention_dim": 2048,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
        "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
        "norm_num_groups": 32, "out_channels": 4, "projection_class_embeddings_input_dim": 2816, "sample_size": 128,
        "transformer_layers_per_block": [1, 2, 10],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": True},
    "vae/config.json": {
        "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "force_upcast": True, "in_channels": 3, "latent_channels": 4,
        "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 1024,
        "scaling_factor": 0.13025, "up_block_types": ["UpDecoderBlock2D"] * 4},
    "text_encoder/config.json": {
        **_TEXT, "architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 768,
        "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "projection_dim": 768},
    "text_encoder_2/config.json": {
        **_TEXT, "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
        "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280},
}
_TOKENIZER = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
              "add_prefix_space": False, "errors": "replace", "bos_token": "<|startoftext|>",
              "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
# SDXL base pads its first tokenizer with <|endoftext|> and its second with "!" (id 0).
PAD_TOKENS = {"tokenizer": "<|endoftext|>", "tokenizer_2": "!"}


def sdxl_base_config_dir() -> Path:
    return cache_root() / "models" / f"{SDXL_BASE_CONFIG_ID}-v{SDXL_BASE_CONFIG_VERSION}"


def clip_vocab(merges: list[str]) -> dict[str, int]:
    """CLIP's vocabulary as its tokenizer builds it: the 256 byte symbols, their end-of-word forms, each merge,
    then the start and end tokens (49,408 entries)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split(" ")) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}


def _write(staging: Path) -> None:
    write_config_folder(staging, CONFIGS, PAD_TOKENS)


def write_config_folder(staging: Path, configs: dict, pad_tokens: dict) -> None:
    """A diffusers folder without weights: each config file, and CLIP tokenizers from the bundled merges."""
    for name, config in configs.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    merges_text = gzip.decompress(_MERGES.read_bytes()).decode("utf-8")
    merges = merges_text.strip("\n").split("\n")[1:]
    vocab = json.dumps(clip_vocab(merges), ensure_ascii=False)
    for name, pad in pad_tokens.items():
        folder = staging / name
        folder.mkdir()
        (folder / "vocab.json").write_text(vocab, encoding="utf-8")
        (folder / "merges.txt").write_text(merges_text, encoding="utf-8")
        config = {**_TOKENIZER, "pad_token": pad}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        special = {key: config[key] for key in ("bos_token", "eos_token", "unk_token", "pad_token")}
        (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")


def ensure_sdxl_base_config() -> Path:
    """SDXL base's diffusers folder without weights (configs, tokenizers, scheduler), built once in the cache."""
    return build_folder_once(sdxl_base_config_dir(), "model_index.json", _write)
