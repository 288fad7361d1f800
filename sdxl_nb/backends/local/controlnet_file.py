"""Single-file SDXL ControlNets loaded offline, their architecture taken from the loaded model's own UNet config."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sdxl_nb.config.safetensors_file import safetensors_header
from sdxl_nb.errors import ModelUnavailableError, one_line

# A ControlNet saved in diffusers' key layout (most SDXL ControlNets shared for A1111 and ComfyUI) has this key;
# the original layout ("control_model.*") goes through diffusers' converter.
DIFFUSERS_KEY = "controlnet_cond_embedding.conv_in.weight"
ORIGINAL_KEY = "control_model.input_hint_block.0.weight"


def _condition_channels(header: dict) -> dict:
    """The control image encoder's widths, read from a diffusers-layout file's shapes (SDXL's: 16, 32, 96, 256)."""
    prefix = "controlnet_cond_embedding."
    conv_in = header.get(prefix + DIFFUSERS_KEY.split(".", 1)[1])
    if conv_in is None:
        return {}
    widths = [conv_in["shape"][0]]
    blocks = sorted(int(key.split(".")[2]) for key in header
                    if key.startswith(prefix + "blocks.") and key.endswith(".weight"))
    widths += [header[f"{prefix}blocks.{index}.weight"]["shape"][0] for index in blocks if index % 2]
    return {"conditioning_embedding_out_channels": tuple(widths), "conditioning_channels": conv_in["shape"][1]}


def _skeleton(unet, header: dict):
    """A ControlNet of the architecture this UNet's ControlNets have, on the meta device (no memory)."""
    import torch
    from diffusers import ControlNetModel

    with torch.device("meta"):
        return ControlNetModel.from_unet(unet, load_weights_from_unet=False, **_condition_channels(header))


def load_controlnet_file(path: Path, unet, name: str):
    """The ControlNetModel in `path` (float32 on the CPU; the caller casts and places it), or one clear error.

    diffusers' own single-file loader looks the config up on the Hub (it fails offline); here the config is the
    one diffusers derives from the loaded UNet, which is what an SDXL ControlNet of the full layout has. A file of
    another layout (the "mid"/"small" variants, another family) fails its strict load and is named.
    """
    from safetensors.torch import load_file

    header = safetensors_header(str(path))
    keys = set(header)
    skeleton = _skeleton(unet, header)
    if DIFFUSERS_KEY in keys:
        try:
            skeleton.load_state_dict(load_file(str(path)), strict=True, assign=True)
        except RuntimeError as exc:
            details = " ".join(str(exc).split())  # torch lists the missing and unexpected keys over many lines
            raise ModelUnavailableError(f"ControlNet {name!r} ({path}) does not have the layout of this model's "
                                        f"ControlNets: {details[:300]}") from None
        return skeleton
    if ORIGINAL_KEY in keys:
        from diffusers import ControlNetModel

        with tempfile.TemporaryDirectory(prefix="sdxl_nb-controlnet-config-") as folder:
            skeleton.save_config(folder)  # config.json only: the converter needs no download
            try:
                return ControlNetModel.from_single_file(str(path), config=folder, local_files_only=True)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ModelUnavailableError(f"ControlNet {name!r} ({path}) could not be converted: "
                                            f"{one_line(exc)[:300]}") from None
    raise ModelUnavailableError(f"ControlNet {name!r} ({path}) has no ControlNet weights (neither {DIFFUSERS_KEY} "
                                f"nor {ORIGINAL_KEY}); accepted: an SDXL ControlNet .safetensors")
