"""The VAE decode, under our control: diffusers' SDXL decode step for step, plus the NaN/black-image guard."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.utils.torch_utils import get_module_execution_device
from PIL import Image


@torch.no_grad()  # as the pipelines' __call__
def decode_latents(pipe, latents: torch.Tensor, *, float32: bool = False) -> torch.Tensor:
    """Latents -> image tensor in [-1, 1], exactly as the SDXL pipelines decode (so pixels stay identical).

    Same steps as diffusers 0.3x-0.4x `StableDiffusionXL*Pipeline.__call__` after the denoising loop:
    upcast a float16 VAE that asks for it (`force_upcast`), undo latents_mean/std when the VAE config has
    them, else divide by scaling_factor, decode, restore the VAE's dtype. `float32=True` upcasts in any case.
    """
    vae = pipe.vae
    original_dtype = vae.dtype
    upcast = (original_dtype == torch.float16 and vae.config.force_upcast) or (float32 and original_dtype != torch.float32)
    if upcast:
        vae.to(dtype=torch.float32)
        latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
    try:
        mean = getattr(vae.config, "latents_mean", None)
        std = getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            std = torch.tensor(std).view(1, 4, 1, 1).to(latents.device, latents.dtype)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        latents = latents.to(get_module_execution_device(vae))
        return vae.decode(latents, return_dict=False)[0]
    finally:
        if upcast:
            vae.to(dtype=original_dtype)


@dataclass
class Decoded:
    images: list[Image.Image | None]  # None: the image stayed NaN/black and must not be saved
    problems: list[str | None]  # why each dropped image was dropped
    events: list[str] = field(default_factory=list)
    redecoded: int = 0  # images decoded a second time in float32


def _bad_rows(latents: torch.Tensor, image: torch.Tensor) -> list[str | None]:
    problems = []
    for latent, decoded in zip(latents, image, strict=True):
        # One pass each: NaN propagates to both extremes and an inf is one of them, so finite extremes mean
        # finite values; the pixel conversion is monotonic, so the brightest pixel is the brightest value's.
        latent_low, latent_high = torch.aminmax(latent)
        low, high = torch.aminmax(decoded)
        if not bool(torch.isfinite(latent_low) & torch.isfinite(latent_high)):
            problems.append("NaN/inf latents")
        elif not bool(torch.isfinite(low) & torch.isfinite(high)):
            problems.append("NaN/inf after the VAE decode")
        elif _pixel_value(high) == 0:
            problems.append("an all-black image")
        else:
            problems.append(None)
    return problems


def _pixel_value(value: torch.Tensor) -> float:
    """The 0-255 pixel a decoded value in [-1, 1] becomes, as the image processor converts it."""
    return float((value.float() / 2 + 0.5).clamp(0, 1).mul(255).round())


@torch.no_grad()
def decode_guarded(pipe, latents: torch.Tensor, labels: list[str]) -> Decoded:
    """Decode a chunk; images with NaN/inf or all black are decoded again with the VAE in float32.

    `labels` name the images in events ("image 2 (seed 43)"). Images still bad after the float32
    decode come back as None with the reason; the caller must not save them.
    """
    image = decode_latents(pipe, latents)
    problems = _bad_rows(latents, image)
    events: list[str] = []
    redecoded = 0
    bad = [i for i, problem in enumerate(problems) if problem]
    if bad and pipe.vae.dtype != torch.float32 and not (pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast):
        names = ", ".join(f"{labels[i]}: {problems[i]}" for i in bad)
        again = decode_latents(pipe, latents[bad], float32=True).to(image.dtype)
        image = image.clone()
        image[bad] = again
        redecoded = len(bad)
        problems = _bad_rows(latents, image)
        fixed = [labels[i] for i in bad if problems[i] is None]
        events.append(f"VAE in {str(pipe.vae.dtype).removeprefix('torch.')} gave {names}; decoded again with "
                      f"the VAE in float32: " + (f"fixed {', '.join(fixed)}" if fixed else "still bad"))
    elif bad:
        events.append("bad decode already in float32 (no retry possible): "
                      + ", ".join(f"{labels[i]}: {problems[i]}" for i in bad))
    if any(problems):
        # NaN cannot become pixels; zero those rows so the conversion of the good rows stays warning-free.
        image = torch.where(torch.isfinite(image), image, torch.zeros((), dtype=image.dtype, device=image.device))
    pil = pipe.image_processor.postprocess(image, output_type="pil")
    images = [None if problem else picture for picture, problem in zip(pil, problems, strict=True)]
    return Decoded(images=images, problems=problems, events=events, redecoded=redecoded)
