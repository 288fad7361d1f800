"""Builds the embedded scorer twins: `tiny-clip` (a small CLIPModel and processor) and its aesthetic MLP file."""

from __future__ import annotations

import json
from pathlib import Path

from sdxl_nb.config.cache_build import build_folder_once
from sdxl_nb.config.tiny import _tokenizer_vocab, cache_root

TINY_CLIP_ID = "tiny-clip"
TINY_CLIP_VERSION = 1  # bump when the recipe changes, so an old cache is not reused
WEIGHT_SEED = 20240505
EMBED_DIM = 32  # the tiny CLIP's projection size: what its aesthetic twin reads
IMAGE_SIZE = 32
CONTEXT = 77  # CLIP's own window, so long prompts are cut where the real model cuts them
AESTHETIC_FILE = "tiny-aesthetic.safetensors"
SPREAD = 1.0  # how much the towers' own projections count against their shared component
# The improved-aesthetic-predictor's hidden sizes (christophschuhmann/improved-aesthetic-predictor, class MLP).
AESTHETIC_HIDDEN = (1024, 128, 64, 16)


def tiny_clip_dir() -> Path:
    return cache_root() / "scorers" / f"{TINY_CLIP_ID}-v{TINY_CLIP_VERSION}"


def _build_clip():
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    vocab = _tokenizer_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=CONTEXT)
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_hidden_layers=2, max_position_embeddings=CONTEXT, bos_token_id=vocab["<|startoftext|>"],
                eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    vision = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                  image_size=IMAGE_SIZE, patch_size=8)
    torch.manual_seed(WEIGHT_SEED)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=EMBED_DIM))
    # Random towers put images and prompts at cosines around 0, which CLIP score clips to 0: every tiny score
    # would be equal. A shared component in both projections, fed by an offset in both final layer norms, moves
    # the cosines to the positive range where CLIP's own scores live, and they still vary with image and prompt.
    shared = torch.randn(EMBED_DIM, 32, generator=torch.Generator("cpu").manual_seed(WEIGHT_SEED + 2))
    with torch.no_grad():
        for projection in (model.visual_projection, model.text_projection):
            projection.weight.mul_(SPREAD).add_(shared * 0.2)
        model.vision_model.post_layernorm.bias.fill_(1.0)
        model.text_model.final_layer_norm.bias.fill_(1.0)
    images = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE,
                                                                               "width": IMAGE_SIZE})
    return model, CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def aesthetic_state(input_size: int, seed: int) -> dict:
    """Deterministic random weights in the predictor's layout (layers.0/2/4/6/7: Linear layers between dropouts)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    sizes = (input_size, *AESTHETIC_HIDDEN, 1)
    names = ("layers.0", "layers.2", "layers.4", "layers.6", "layers.7")
    state = {}
    for name, fan_in, fan_out in zip(names, sizes[:-1], sizes[1:], strict=True):
        bound = fan_in ** -0.5
        state[f"{name}.weight"] = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
        state[f"{name}.bias"] = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
    return state


def ensure_tiny_clip(target: Path | None = None) -> Path:
    """Build and save the tiny CLIP once (transformers folder: config, safetensors, processor files) with the tiny
    aesthetic MLP beside it; its folder."""

    def write(staging: Path) -> None:
        from safetensors.torch import save_file

        model, processor = _build_clip()
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)
        save_file(aesthetic_state(EMBED_DIM, WEIGHT_SEED + 1), str(staging / AESTHETIC_FILE))
        (staging / "sdxl_nb_model.json").write_text(json.dumps(
            {"id": TINY_CLIP_ID, "version": TINY_CLIP_VERSION, "weight_seed": WEIGHT_SEED}) + "\n", encoding="utf-8")

    return build_folder_once(Path(target) if target else tiny_clip_dir(), "sdxl_nb_model.json", write)


def tiny_aesthetic_file() -> Path:
    return ensure_tiny_clip() / AESTHETIC_FILE
