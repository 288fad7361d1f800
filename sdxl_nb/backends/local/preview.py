"""Step previews: a cheap latent -> RGB approximation (no VAE) and a throttle so previews stay cheap."""

from __future__ import annotations

import time

import torch
from PIL import Image

# Linear map from SDXL's 4 latent channels to RGB (approximate factors as used by common SDXL UIs
# for live previews); rows are latent channels, columns R, G, B. Output is roughly in [-1, 1].
SDXL_LATENT_RGB = (
    (0.3920, 0.4054, 0.4549),
    (-0.2634, -0.0196, 0.0653),
    (0.0568, 0.1687, -0.0755),
    (-0.3112, -0.2359, -0.2076),
)


def latents_to_rgb(latents: torch.Tensor) -> Image.Image:
    """One image's latents (4, h, w) or a batch's first (n, 4, h, w) as a small RGB preview (1/8 size)."""
    latent = latents[0] if latents.ndim == 4 else latents
    factors = torch.tensor(SDXL_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent.detach().float().cpu()[:4], factors)
    pixels = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB")


class Throttle:
    """True at most once per `interval_s` (the first call and the last step always pass)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.last = None

    def ready(self, final: bool = False) -> bool:
        now = time.monotonic()
        if final or self.last is None or now - self.last >= self.interval_s:
            self.last = now
            return True
        return False
