"""Upscaler models (ESRGAN, SwinIR, DAT...) loaded with spandrel, run tile by tile; and A1111's upscale-to-size rule."""

from __future__ import annotations

import threading

import numpy as np
import torch
from PIL import Image

from sdxl_nb.config.upscalers import Upscaler
from sdxl_nb.errors import InputError, one_line

TILE = 512  # input pixels per tile side: a 4x model's output tile stays near 2048 px
OVERLAP = 32  # input pixels of context on each side of a tile, cropped from its output

_CACHE: dict[str, object] = {}  # sha256 -> spandrel ImageModelDescriptor (the last one used)
_LOCK = threading.Lock()


def _not_an_upscaler(upscaler: Upscaler, reason: str) -> InputError:
    return InputError(f"upscaler {upscaler.name!r} ({upscaler.path}) is not an upscaler model spandrel recognises "
                      f"({reason.split('; accepted')[0]}); accepted: ESRGAN, Real-ESRGAN, SwinIR, DAT... as .pth or .safetensors")


def load_upscaler(upscaler: Upscaler, device: str = "cpu"):
    """The spandrel model of an upscaler file (cached by content); a file spandrel does not recognise as an
    image-to-image model is one InputError line naming it."""
    import spandrel

    with _LOCK:
        model = _CACHE.get(upscaler.sha256 or "")
        if model is None:
            from sdxl_nb.backends.local.weights import WeightsRefused, load_state_dict

            # spandrel gets a state dict from the one weights loader: its own load_from_file would run a
            # TorchScript archive's code.
            try:
                state = load_state_dict(upscaler.path, what=f"upscaler {upscaler.name!r}")
                model = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
            except WeightsRefused as exc:
                raise _not_an_upscaler(upscaler, exc.reason) from None
            except Exception as exc:  # spandrel raises many types for unknown or damaged weights
                raise _not_an_upscaler(upscaler, one_line(exc)[:200]) from None
            if not isinstance(model, spandrel.ImageModelDescriptor):
                raise InputError(f"upscaler {upscaler.name!r} ({upscaler.path}) is a {type(model).__name__} "
                                 f"({model.architecture.name}), not an upscaler")
            model.model.eval()
            _CACHE.clear()
            _CACHE[upscaler.sha256 or ""] = model
        model.to(device)
        return model


def check_upscaler(upscaler: Upscaler) -> str:
    """Load a model file once (refusing a bad one in one line); its architecture and scale, as the lab lists them."""
    model = load_upscaler(upscaler)
    return f"{model.architecture.name} x{model.scale}"


def run_tiled(model, pixels: torch.Tensor, tile: int = TILE, overlap: int = OVERLAP) -> torch.Tensor:
    """Run a model on [1, 3, H, W] pixels in tiles of `tile` input pixels, each with `overlap` pixels of context
    cropped from its output. With `overlap` at least the model's receptive radius the result equals the untiled
    one up to float rounding (the tests bound it); the memory stays that of one tile."""
    _, _, height, width = pixels.shape
    scale = model.scale
    out = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(0, top - overlap), max(0, left - overlap)
            y1, x1 = min(height, bottom + overlap), min(width, right + overlap)
            with torch.no_grad():
                result = model(pixels[:, :, y0:y1, x0:x1])
            if out is None:
                out = torch.zeros(1, result.shape[1], height * scale, width * scale, dtype=result.dtype)
            out[:, :, top * scale:bottom * scale, left * scale:right * scale] = result[
                :, :, (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale].cpu()
    return out


def upscale_with_model(model, image: Image.Image, device: str = "cpu", tile: int = TILE,
                       overlap: int = OVERLAP) -> Image.Image:
    """One pass of the model over an RGB image (float32, tiled); the result is `model.scale` times larger."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)
    model.model.float()
    result = run_tiled(model, pixels, tile, overlap)
    data = (result[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(data, "RGB")


def upscale_to(image: Image.Image, upscaler: Upscaler, size: tuple[int, int], device: str = "cpu",
               tile: int = TILE, overlap: int = OVERLAP) -> Image.Image:
    """An image at `size` by a pixel upscaler, as A1111 does it: a model runs until the image is at least that
    large (at most 3 times), then Lanczos resizes it to the exact size."""
    if upscaler.kind == "model":
        model = load_upscaler(upscaler, device)
        for _ in range(3):
            if image.width >= size[0] and image.height >= size[1]:
                break
            image = upscale_with_model(model, image, device, tile, overlap)
    elif upscaler.kind != "pixel":
        raise ValueError(f"{upscaler.name} is a latent upscaler, not a pixel one")
    return image if image.size == tuple(size) else image.resize(size, Image.Resampling.LANCZOS)
