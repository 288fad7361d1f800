"""The embedded `tiny-sdxl-ip-adapter`: a deterministic IP-Adapter and CLIP image encoder for tiny-sdxl, h94 layout.

The folder looks like h94/IP-Adapter: `sdxl_models/<name>.safetensors` (`image_proj.*` and `ip_adapter.*` keys,
the original layout diffusers' `load_ip_adapter` converts) beside `sdxl_models/image_encoder/` (a transformers
`CLIPVisionModelWithProjection` folder). The adapter has one `to_k_ip`/`to_v_ip` pair per cross-attention layer
of tiny-sdxl's UNet, numbered as diffusers numbers them (1, 3, 5, ... in `unet.attn_processors` order).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.tiny import cache_root, ensure_tiny_model

DEMO_IP_ADAPTER = "tiny-sdxl-ip-adapter"
# The Plus kind (a resampler over the encoder's penultimate hidden states), with the second encoder in
# models/image_encoder as h94's *_vit-h adapters have theirs.
DEMO_IP_ADAPTER_PLUS = "tiny-sdxl-ip-adapter-plus_vit-h"
TINY_IP_VERSION = 2  # bump when the recipe changes, so an old cached folder is not reused
IP_SEED = 20240303
ENCODER_CONFIG = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                      image_size=32, patch_size=8, projection_dim=32, hidden_act="gelu")
IMAGE_TOKENS = 4  # what diffusers' ImageProjection assumes for a plain IP-Adapter


def demo_ip_adapter_root() -> Path:
    return cache_root() / "ip-adapters" / f"{DEMO_IP_ADAPTER}-v{TINY_IP_VERSION}"


def cross_attention_layers(unet_config: dict) -> list[tuple[str, int]]:
    """(processor name, hidden size) of every cross-attention layer of a UNet config, in attn_processors order.

    The UNet is built on the meta device (no weights) so the order is diffusers' own.
    """
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(unet_config)
    channels = list(unet_config["block_out_channels"])
    layers = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        layers.append((name, hidden))
    return layers


def tiny_ip_adapter_tensors(*, seed: int = IP_SEED, strength: float = 1.0) -> dict:
    """name -> float32 numpy array of a plain IP-Adapter for tiny-sdxl (keys as h94's files hold them)."""
    import numpy as np

    unet_config = json.loads((ensure_tiny_model() / "unet" / "config.json").read_text(encoding="utf-8"))
    cross = unet_config["cross_attention_dim"]
    embed = ENCODER_CONFIG["projection_dim"]
    rng = np.random.default_rng(seed)
    tensors = {
        "image_proj.proj.weight": (rng.standard_normal((IMAGE_TOKENS * cross, embed)) / np.sqrt(embed)).astype(np.float32),
        "image_proj.proj.bias": np.zeros(IMAGE_TOKENS * cross, dtype=np.float32),
        "image_proj.norm.weight": np.ones(cross, dtype=np.float32),
        "image_proj.norm.bias": np.zeros(cross, dtype=np.float32),
    }
    for position, (_name, hidden) in enumerate(cross_attention_layers(unet_config)):
        key_id = 2 * position + 1  # diffusers' numbering: attn1 and attn2 alternate, the cross ones are odd
        for part in ("to_k_ip", "to_v_ip"):
            weight = strength * rng.standard_normal((hidden, cross)) / np.sqrt(cross)
            tensors[f"ip_adapter.{key_id}.{part}.weight"] = weight.astype(np.float32)
    return tensors


def tiny_ip_adapter_plus_tensors(*, seed: int = IP_SEED + 1, queries: int = 4, depth: int = 4) -> dict:
    """An IP-Adapter Plus for tiny-sdxl: h94's Resampler keys (latents, proj_in, layers.N.0 attention with to_kv,
    layers.N.1 feed-forward, proj_out, norm_out); diffusers builds 4 layers with 64-wide heads, so width 64."""
    import numpy as np

    unet_config = json.loads((ensure_tiny_model() / "unet" / "config.json").read_text(encoding="utf-8"))
    cross, embed, width = unet_config["cross_attention_dim"], ENCODER_CONFIG["hidden_size"], 64
    rng = np.random.default_rng(seed)

    def dense(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    tensors = {"image_proj.latents": (rng.standard_normal((1, queries, width)) / np.sqrt(width)).astype(np.float32),
               "image_proj.proj_in.weight": dense(width, embed), "image_proj.proj_in.bias": np.zeros(width, np.float32),
               "image_proj.proj_out.weight": dense(cross, width), "image_proj.proj_out.bias": np.zeros(cross, np.float32),
               "image_proj.norm_out.weight": np.ones(cross, np.float32),
               "image_proj.norm_out.bias": np.zeros(cross, np.float32)}
    for layer in range(depth):
        head = f"image_proj.layers.{layer}"
        for norm in (f"{head}.0.norm1", f"{head}.0.norm2", f"{head}.1.0"):
            tensors[f"{norm}.weight"], tensors[f"{norm}.bias"] = np.ones(width, np.float32), np.zeros(width, np.float32)
        tensors[f"{head}.0.to_q.weight"] = dense(width, width)
        tensors[f"{head}.0.to_kv.weight"] = dense(2 * width, width)
        tensors[f"{head}.0.to_out.weight"] = dense(width, width)
        tensors[f"{head}.1.1.weight"] = dense(4 * width, width)
        tensors[f"{head}.1.3.weight"] = dense(width, 4 * width)
    for position, (_name, hidden) in enumerate(cross_attention_layers(unet_config)):
        for part in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{2 * position + 1}.{part}.weight"] = dense(hidden, cross)
    return tensors


def _save_encoder(folder: Path, seed: int = IP_SEED) -> None:
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**ENCODER_CONFIG))
    encoder.save_pretrained(folder, safe_serialization=True)


def build_ip_adapter_folder(target: Path, name: str = DEMO_IP_ADAPTER, tensors: dict | None = None, *,
                            plus: bool = False) -> Path:
    """Write an h94-layout folder (sdxl_models/NAME.safetensors + sdxl_models/image_encoder/) at `target`; with
    `plus`, also the Plus adapter and its encoder in models/image_encoder."""
    from sdxl_nb.config.tiny_lora import write_lora

    models = Path(target) / "sdxl_models"
    write_lora(models / f"{name}.safetensors", tensors if tensors is not None else tiny_ip_adapter_tensors())
    _save_encoder(models / "image_encoder")
    if plus:
        write_lora(models / f"{DEMO_IP_ADAPTER_PLUS}.safetensors", tiny_ip_adapter_plus_tensors())
        _save_encoder(Path(target) / "models" / "image_encoder", IP_SEED + 1)
    return Path(target)


def ensure_demo_ip_adapter() -> Path:
    """Build the embedded tiny IP-Adapter folder once; its root (the h94 layout)."""
    return build_folder_once(demo_ip_adapter_root(), f"sdxl_models/{DEMO_IP_ADAPTER}.safetensors",
                             lambda staging: build_ip_adapter_folder(staging, plus=True))


def copy_demo_ip_adapter(folder: str | os.PathLike, name: str = DEMO_IP_ADAPTER) -> Path:
    """The tiny adapter's h94 folder copied to `folder` (its weight file renamed `name`), for notebooks and tests."""
    source = ensure_demo_ip_adapter()
    target = Path(folder)
    shutil.copytree(source / "sdxl_models" / "image_encoder", target / "sdxl_models" / "image_encoder",
                    dirs_exist_ok=True)
    shutil.copyfile(source / "sdxl_models" / f"{DEMO_IP_ADAPTER}.safetensors",
                    target / "sdxl_models" / f"{name}.safetensors")
    return target
