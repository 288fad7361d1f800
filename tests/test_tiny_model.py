"""The embedded model: same bytes every build, SDXL architecture, saved in the diffusers layout."""

import json

from sdxl_nb.config.tiny import content_revision, ensure_tiny_model


def test_builds_are_byte_identical(tmp_path):
    a = ensure_tiny_model(tmp_path / "a")
    b = ensure_tiny_model(tmp_path / "b")
    assert content_revision(a) == content_revision(b)
    assert (a / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        b / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert not list(tmp_path.glob(".building-*"))


def test_is_an_sdxl_pipeline_folder():
    folder = ensure_tiny_model()
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert {"text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae", "scheduler"} <= set(index)
    unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
    assert unet["addition_embed_type"] == "text_time"
    vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    assert len(vae["block_out_channels"]) == 4  # SDXL's 8x latent scale
