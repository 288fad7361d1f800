"""Builds the embedded `tiny-sdxl` demo model: SDXL architecture, small dimensions, fixed random weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.cache_build import build_folder_once

TINY_MODEL_ID = "tiny-sdxl"
# Bump when the architecture or the weight recipe changes, so old caches are not reused.
TINY_MODEL_VERSION = 1
# Byte-level tokens make prompts ~4x longer than CLIP's BPE; a wider window keeps the
# "prompt truncated" warning meaningful for the demo model.
TINY_CONTEXT = 256
WEIGHT_SEED = 20240101


# The tiny UNet's blocks, shared by tiny-sdxl and its refiner twin (which differ in conditioning only).
TINY_UNET_LAYOUT = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4),
    transformer_layers_per_block=(1, 1),
    use_linear_projection=True,
    norm_num_groups=8,
)


def cache_root() -> Path:
    """Folder where sdxl_nb keeps what it builds (`SDXL_NB_CACHE`, default ~/.cache/sdxl_nb)."""
    return Path(settings.cache_dir() or Path.home() / ".cache" / "sdxl_nb")


def tiny_model_dir() -> Path:
    return cache_root() / "models" / f"{TINY_MODEL_ID}-v{TINY_MODEL_VERSION}"


def _tokenizer_vocab() -> dict[str, int]:
    # Byte-level symbols and their end-of-word forms: every string tokenizes with no merges file.
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    return {token: index for index, token in enumerate(tokens)}


def _build_components() -> dict:
    import torch
    import transformers

    # Quiet before diffusers is imported: importing it makes transformers warn about torchvision on stderr.
    transformers.utils.logging.set_verbosity_error()
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab = _tokenizer_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_CONTEXT)
    tokenizer_2 = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_CONTEXT)
    text_config = dict(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=TINY_CONTEXT,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
        hidden_act="gelu",
        projection_dim=32,
    )
    # Each component gets its own fixed seed so its bytes do not depend on build order.
    torch.manual_seed(WEIGHT_SEED)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    torch.manual_seed(WEIGHT_SEED + 1)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_config))
    torch.manual_seed(WEIGHT_SEED + 2)
    unet = UNet2DConditionModel(
        **TINY_UNET_LAYOUT,
        cross_attention_dim=64,  # both encoders' hidden states side by side, as in SDXL
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + pooled embedding
    )
    torch.manual_seed(WEIGHT_SEED + 3)
    # Four blocks give SDXL's 8x latent downscale, so sizes behave as with real models.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=128,
        scaling_factor=0.13025,
        force_upcast=False,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
    )
    return dict(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )


def build_tiny_pipeline():
    """A fresh StableDiffusionXLPipeline with the tiny model's fixed weights (in memory)."""
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(**_build_components(), add_watermarker=False)


def content_revision(folder: Path) -> str:
    """A short hash of every file in a saved model folder: the tiny model's revision."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def ensure_tiny_model(target: Path | None = None) -> Path:
    """Build and save the tiny model once (diffusers folder layout); return its folder."""

    def write(staging: Path) -> None:
        build_tiny_pipeline().save_pretrained(staging, safe_serialization=True)
        (staging / "sdxl_nb_model.json").write_text(
            json.dumps({"id": TINY_MODEL_ID, "version": TINY_MODEL_VERSION, "weight_seed": WEIGHT_SEED}) + "\n",
            encoding="utf-8",
        )

    return build_folder_once(Path(target) if target else tiny_model_dir(), "model_index.json", write)
