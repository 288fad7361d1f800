"""The bench's models beside the random-weight base: the SDXL refiner and rank-8 LoRA files, sized from the base."""

from __future__ import annotations

from pathlib import Path

REFINER_ID = "stabilityai/stable-diffusion-xl-refiner-1.0"
# Public SDXL refiner 1.0 UNet values (sgm's sd_xl_refiner.yaml: model_channels 384, channel_mult 1,2,4,4,
# transformer depth 4, context 1280, adm_in_channels 2560, 64 channels per head), in diffusers' names.
REFINER_UNET_CONFIG = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(384, 768, 1536, 1536),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=4, attention_head_dim=(6, 12, 24, 24), cross_attention_dim=1280,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2560, norm_num_groups=32,
)
LORA_SEED = 20261202


def build_refiner(pipe, architecture: str):
    """An SDXL refiner (img2img) beside the base `pipe`: the base's VAE and text_encoder_2 objects (so their saved
    files hash alike and the engine shares them), its own random UNet ("full": refiner 1.0 sizes; "tiny": the
    embedded tiny refiner's)."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel

    if architecture == "full":
        with torch.device(pipe.device):
            unet = UNet2DConditionModel(**REFINER_UNET_CONFIG)
    else:
        from sdxl_nb.config.tiny_refiner import build_tiny_refiner

        unet = build_tiny_refiner().unet
    unet.to(device=pipe.device, dtype=pipe.unet.dtype)
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=pipe.vae, text_encoder=None, text_encoder_2=pipe.text_encoder_2, tokenizer=None,
        tokenizer_2=pipe.tokenizer_2, unet=unet, scheduler=pipe.scheduler, requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False, add_watermarker=False)
    refiner.set_progress_bar_config(disable=True)
    return refiner


def refiner_parameter_count() -> int:
    """Parameters of the full-size refiner UNet (on the meta device: instant)."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**REFINER_UNET_CONFIG)
    return sum(p.numel() for p in unet.parameters())


def unet_attention_layers(unet) -> list[tuple[str, int, int]]:
    """(module name, out features, in features) of every attention projection a LoRA attaches to (to_q, to_k,
    to_v, to_out.0 of attn1 and attn2), in name order; the same layer set as the tiny LoRA twin's."""
    import torch

    from sdxl_nb.config.tiny_lora import _UNET_LAYER

    return sorted((name, module.out_features, module.in_features) for name, module in unet.named_modules()
                  if isinstance(module, torch.nn.Linear) and _UNET_LAYER.match(name + ".weight"))


def write_bench_loras(folder: str | Path, unet, *, count: int = 2, rank: int = 8, seed: int = LORA_SEED) -> list[Path]:
    """`count` LoRA files for `unet` (PEFT key layout, float16, fixed random factors of `rank`); their paths."""
    import numpy as np

    from sdxl_nb.config.tiny_lora import write_lora

    layers = unet_attention_layers(unet)
    paths = []
    for index in range(count):
        rng = np.random.default_rng(seed + index)
        tensors = {}
        for module, out_features, in_features in layers:
            down = rng.standard_normal((rank, in_features), dtype=np.float32) / np.sqrt(in_features)
            up = rng.standard_normal((out_features, rank), dtype=np.float32) / np.sqrt(rank)
            tensors[f"unet.{module}.lora_A.weight"] = down.astype(np.float16)
            tensors[f"unet.{module}.lora_B.weight"] = up.astype(np.float16)
        paths.append(write_lora(Path(folder) / f"bench-lora-{index + 1}.safetensors", tensors,
                                {"ss_base_model_version": "sdxl_base_v1-0"}))
    return paths
