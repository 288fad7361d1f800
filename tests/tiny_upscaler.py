"""A tiny Real-ESRGAN Compact (SRVGGNetCompact) upscaler with deterministic random weights, for tests."""

from __future__ import annotations

from pathlib import Path

# 3x3 convolutions: the first, NUM_CONV more, the last; each reaches one pixel further.
NUM_CONV = 2
RECEPTIVE_RADIUS = NUM_CONV + 2


def tiny_compact_state(scale: int = 2, seed: int = 0, features: int = 8) -> dict:
    import torch
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=features, num_conv=NUM_CONV, upscale=scale)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.2)  # small residuals: the output stays close to the nearest-upscaled input
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def write_tiny_upscaler(path: Path, scale: int = 2, seed: int = 0) -> Path:
    """`.safetensors` or `.pth`, by the path's suffix."""
    import torch

    state = tiny_compact_state(scale, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def write_tiny_esrgan(path: Path, seed: int = 0) -> Path:
    """A tiny ESRGAN (RRDBNet: 8 filters, one block, x4) in the original ESRGAN `.pth` layout."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
