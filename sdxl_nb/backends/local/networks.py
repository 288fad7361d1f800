"""A job's LoRAs and embeddings against the model, before any work; embedding vectors read once per file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from sdxl_nb.backends.local.lora import fit_problem, meta_layer_shapes
from sdxl_nb.errors import InputError

_SHAPES: dict[str, tuple[dict, SimpleNamespace]] = {}  # model folder -> (layer shapes, UNet config)


def _folder_shapes(folder: Path) -> tuple[dict, SimpleNamespace]:
    key = str(folder)
    if key not in _SHAPES:
        config = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
        _SHAPES[key] = (meta_layer_shapes(folder), SimpleNamespace(**config))
    return _SHAPES[key]


def _widths(loaded, folder: Path | None) -> tuple[int, int]:
    if loaded is not None:
        return loaded.pipe.text_encoder.config.hidden_size, loaded.pipe.text_encoder_2.config.hidden_size
    configs = [json.loads((folder / name / "config.json").read_text(encoding="utf-8"))
               for name in ("text_encoder", "text_encoder_2")]
    return configs[0]["hidden_size"], configs[1]["hidden_size"]


def lora_problem(lora, model_id: str, *, loaded=None, folder: Path | None = None) -> str | None:
    """Why a LoRA does not fit the model (the loaded one, else the model folder's modules on the meta device)."""
    if loaded is not None:
        return loaded.lora_switch().problem(lora, model_id)
    shapes, unet_config = _folder_shapes(folder)
    return fit_problem(lora, shapes, unet_config, model_id)


def check_networks(r, model_id: str, *, loaded=None, folder: Path | None = None) -> None:
    """Every LoRA fits the model layer by layer and every embedding has the encoders' widths, else InputError."""
    for lora in r.loras:
        problem = lora_problem(lora, model_id, loaded=loaded, folder=folder)
        if problem:
            raise InputError(problem)
    if r.embeddings:
        from sdxl_nb.config.safetensors_file import safetensors_header

        widths = _widths(loaded, folder)
        for embedding in r.embeddings:
            header = safetensors_header(embedding.path)
            shapes = [(header.get(key) or {}).get("shape") or [] for key in ("clip_l", "clip_g")]
            if any(len(shape) != 2 for shape in shapes):
                raise InputError(f"embedding {embedding.name!r} ({embedding.path}) is not an SDXL embedding (it needs "
                                 "clip_l and clip_g tensors of [vectors, width])")
            found = (shapes[0][1], shapes[1][1])
            if found != widths:
                raise InputError(f"embedding {embedding.name!r} has widths clip_l {found[0]} / clip_g {found[1]}; "
                                 f"{model_id}'s text encoders take {widths[0]} / {widths[1]}: it was made for "
                                 "another model")


def embedding_vectors(loaded, embeddings) -> dict:
    """name -> (clip_l, clip_g) float tensors, cached on the loaded model by file content."""
    from sdxl_nb.backends.local.weights import load_state_dict

    vectors = {}
    for embedding in embeddings:
        if embedding.sha256 not in loaded.vectors:
            tensors = load_state_dict(embedding.path, what=f"embedding {embedding.name!r}")
            loaded.vectors[embedding.sha256] = (tensors["clip_l"], tensors["clip_g"])
        vectors[embedding.name] = loaded.vectors[embedding.sha256]
    return vectors
