"""Tiny LoRA files for tiny-sdxl (the demo LoRA `tiny-sdxl-lora`, and test files) in kohya or PEFT key layouts.

Fixed random low-rank factors for every attention projection of tiny-sdxl's UNet and both text encoders,
written with numpy (no torch). The layer list and shapes come from the tiny model's own files.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from sdxl_nb.config.tiny import cache_root, ensure_tiny_model

DEMO_LORA_VERSION = 2  # bump when the recipe changes, so an old cached file is not reused
DEMO_SEED = 20240202
LAYOUTS = ("kohya", "kohya-sgm", "peft")
_UNET_LAYER = re.compile(r"^((?:down_blocks|up_blocks|mid_block)\..*\.attn[12]\.to_(?:q|k|v|out\.0))\.weight$")
_TEXT_LAYER = re.compile(r"^(?:text_model\.)?(encoder\.layers\.\d+\.self_attn\.(?:q|k|v|out)_proj)\.weight$")


def demo_lora_path() -> Path:
    return cache_root() / "loras" / f"tiny-sdxl-lora-v{DEMO_LORA_VERSION}.safetensors"


def tiny_layers() -> dict[str, list[tuple[str, tuple[int, int]]]]:
    """part ("unet", "te1", "te2") -> [(module name, (out features, in features))] of tiny-sdxl."""
    from sdxl_nb.config.safetensors_file import safetensors_header

    folder = ensure_tiny_model()
    files = {"unet": "unet/diffusion_pytorch_model.safetensors", "te1": "text_encoder/model.safetensors",
             "te2": "text_encoder_2/model.safetensors"}
    layers = {}
    for part, name in files.items():
        header = safetensors_header(folder / name)
        pattern = _UNET_LAYER if part == "unet" else _TEXT_LAYER
        found = []
        for key in sorted(header):
            match = pattern.match(key)
            if match:
                module = match.group(1) if part == "unet" else "text_model." + match.group(1)
                found.append((module, tuple(header[key]["shape"])))
        layers[part] = found
    return layers


def _sgm(module: str, layers_per_block: int = 1) -> str | None:
    """A diffusers UNet attention module's name in SDXL's original (sgm) layout, as kohya writes SDXL LoRAs."""
    parts = module.split(".")
    if parts[0] == "down_blocks":
        block = f"input_blocks.{1 + int(parts[1]) * (layers_per_block + 1) + int(parts[3])}.1"
    elif parts[0] == "up_blocks":
        block = f"output_blocks.{int(parts[1]) * (layers_per_block + 1) + int(parts[3])}.1"
    else:
        return None  # the mid block: diffusers drops sgm mid-block keys when loading (left out of these files)
    return ".".join([block, *parts[4:]])


def _key(part: str, module: str, layout: str) -> str | None:
    if layout == "peft":
        prefix = {"unet": "unet", "te1": "text_encoder", "te2": "text_encoder_2"}[part]
        return f"{prefix}.{module}"
    if part == "unet" and layout == "kohya-sgm":
        module = _sgm(module)
        if module is None:
            return None
    prefix = {"unet": "lora_unet", "te1": "lora_te1", "te2": "lora_te2"}[part]
    return f"{prefix}_{module.replace('.', '_')}"


def tiny_lora_tensors(layout: str = "kohya", *, seed: int = DEMO_SEED, rank: int = 4, strength: float = 1.0,
                      parts: tuple[str, ...] = ("unet", "te1", "te2")) -> dict:
    """name -> float32 numpy array of a LoRA for tiny-sdxl; `strength` scales its effect (the up factors)."""
    import numpy as np

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
    rng = np.random.default_rng(seed)
    tensors = {}
    for part, layers in tiny_layers().items():
        if part not in parts:
            continue
        for module, (out_features, in_features) in layers:
            key = _key(part, module, layout)
            if key is None:
                continue
            down = rng.standard_normal((rank, in_features)).astype(np.float32) / np.sqrt(in_features)
            up = (strength * rng.standard_normal((out_features, rank)) / np.sqrt(rank)).astype(np.float32)
            if layout == "peft":
                tensors[f"{key}.lora_A.weight"], tensors[f"{key}.lora_B.weight"] = down, up
            else:
                tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = down, up
                tensors[f"{key}.alpha"] = np.array(float(rank), dtype=np.float32)
    return tensors


def write_lora(path: str | os.PathLike, tensors: dict, metadata: dict | None = None) -> Path:
    """Write tensors as a .safetensors file atomically (a half-written LoRA never appears under its name)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=".writing-", suffix=".safetensors", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, staging, metadata=metadata)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


def ensure_demo_lora() -> Path:
    """Build the demo LoRA `tiny-sdxl-lora` once (kohya layout, UNet and both text encoders); its path."""
    from filelock import FileLock

    path = demo_lora_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.is_file():
            # One metadata key: safetensors writes a metadata map in no fixed order, so more would vary the bytes.
            write_lora(path, tiny_lora_tensors("kohya"), {"ss_base_model_version": "sdxl_base_v1-0"})
    return path


def copy_demo_lora(folder: str | os.PathLike, name: str = "tiny-sdxl-lora") -> Path:
    """The demo LoRA copied into a folder under another name (for notebooks and tests)."""
    target = Path(folder) / f"{name}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ensure_demo_lora(), target)
    return target


def tiny_embedding_tensors(vectors: int = 2, *, seed: int = DEMO_SEED, widths: tuple[int, int] | None = None) -> dict:
    """An SDXL textual-inversion embedding for tiny-sdxl: clip_l and clip_g, `vectors` rows each (numpy)."""
    import numpy as np

    if widths is None:
        layers = tiny_layers()
        widths = (layers["te1"][0][1][1], layers["te2"][0][1][1])
    rng = np.random.default_rng(seed)
    return {"clip_l": rng.standard_normal((vectors, widths[0])).astype(np.float32),
            "clip_g": rng.standard_normal((vectors, widths[1])).astype(np.float32)}
