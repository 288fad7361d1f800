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


def meta_unet(unet_config: dict):
    """A UNet of this config on the meta device (no memory): what a ControlNet's architecture derives from."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return UNet2DConditionModel.from_config(unet_config)


def _condition_channels(header: dict) -> dict:
    """The control image encoder's widths, read from a diffusers-layout file's shapes (SDXL's: 16, 32, 96, 256)."""
    prefix = "controlnet_cond_embedding."
    conv_in = header.get(DIFFUSERS_KEY)
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


def layout_problem(path: Path, unet, name: str) -> str | None:
    """Why the file cannot be this model's ControlNet (one line naming it), or None; reads the header only."""
    header = safetensors_header(str(path))
    if DIFFUSERS_KEY in header:
        wanted = {key: tuple(value.shape) for key, value in _skeleton(unet, header).state_dict().items()}
        found = {key: tuple(entry["shape"]) for key, entry in header.items() if key != "__metadata__"}
        missing, extra = sorted(set(wanted) - set(found)), sorted(set(found) - set(wanted))
        resized = sorted(key for key in set(wanted) & set(found) if wanted[key] != found[key])
        if missing or extra or resized:
            first = (missing or extra or resized)[0]
            return (f"ControlNet {name!r} ({path}) does not have the layout of this model's ControlNets: "
                    f"{len(missing)} weight(s) missing, {len(extra)} unexpected, {len(resized)} of another shape "
                    f"(e.g. {first}); a \"mid\"/\"small\" variant or another model family?")
        return None
    if ORIGINAL_KEY in header:
        return None  # diffusers' converter decides when it loads
    return (f"ControlNet {name!r} ({path}) has no ControlNet weights (neither {DIFFUSERS_KEY} nor {ORIGINAL_KEY}); "
            "accepted: an SDXL ControlNet .safetensors")


def load_controlnet_file(path: Path, unet, name: str):
    """The ControlNetModel in `path` (float32 on the CPU; the caller casts and places it), or one clear error.

    diffusers' own single-file loader looks the config up on the Hub (it fails offline); here the config is the
    one diffusers derives from the loaded UNet, which is what an SDXL ControlNet of the full layout has.
    """
    from sdxl_nb.backends.local.weights import check_weights_file, load_state_dict

    check_weights_file(path, what=f"ControlNet {name!r}")  # also its format: .safetensors only reach the converter
    if Path(path).suffix.lower() != ".safetensors":
        raise ModelUnavailableError(f"ControlNet {name!r} ({path}) is not a .safetensors file; accepted: an SDXL "
                                    "ControlNet .safetensors, or a diffusers folder")
    problem = layout_problem(path, unet, name)
    if problem:
        raise ModelUnavailableError(problem)
    header = safetensors_header(str(path))
    skeleton = _skeleton(unet, header)
    if DIFFUSERS_KEY in header:
        skeleton.load_state_dict(load_state_dict(path, what=f"ControlNet {name!r}"), strict=True, assign=True)
        return skeleton
    from diffusers import ControlNetModel

    # diffusers opens the file itself here, only after the weights checker accepted it above (a checked
    # .safetensors: diffusers reads it with safetensors, never with pickle).
    with tempfile.TemporaryDirectory(prefix="sdxl_nb-controlnet-config-") as folder:
        skeleton.save_config(folder)  # config.json only: the converter needs no download
        try:
            return ControlNetModel.from_single_file(str(path), config=folder, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelUnavailableError(f"ControlNet {name!r} ({path}) could not be converted: "
                                        f"{one_line(exc)[:300]}") from None
