"""Pipelines whose images each have their own conditioning and noise: slerp between seeds, prompt blending."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
from diffusers.utils.torch_utils import randn_tensor


def initial_noise(seed: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The initial noise SDXL's own prepare_latents draws for one image from a CPU generator of this seed."""
    return randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed), device=torch.device("cpu"),
                        dtype=dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation, computed in float64; t=0 returns a and t=1 returns b exactly."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    a64, b64 = a.double(), b.double()
    cos = (a64 * b64).sum() / (a64.norm() * b64.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if theta.abs() < 1e-4:  # nearly parallel: the spherical weights are 0/0, the straight line is the same path
        mixed = torch.lerp(a64, b64, t)
    else:
        sin = torch.sin(theta)
        mixed = torch.sin((1 - t) * theta) / sin * a64 + torch.sin(t * theta) / sin * b64
    return mixed.to(a.dtype)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Straight-line blend in float32; t=0 and t=1 give a and b exactly."""
    if t == 0:
        return a
    if t == 1:
        return b
    return torch.lerp(a.float(), b.float(), t).to(a.dtype)


class _NoiseMix:
    """Per call, (seed_end, t) for each image, or None: mix the plain noise toward seed_end's by slerp."""

    noise_mix: list[tuple[int, float] | None] | None = None

    def _mixed(self, noise: list[torch.Tensor], end_noise: Callable[[int], torch.Tensor]) -> torch.Tensor:
        ends: dict[int, torch.Tensor] = {}
        mixed = []
        for plain, mix in zip(noise, self.noise_mix, strict=True):
            if mix is None:
                mixed.append(plain)
                continue
            seed_end, t = mix
            if seed_end not in ends:
                ends[seed_end] = end_noise(seed_end)
            mixed.append(slerp(plain, ends[seed_end], t))
        return torch.cat(mixed)


class MixingTxt2Img(_NoiseMix, StableDiffusionXLPipeline):
    def prepare_latents(self, batch_size, num_channels_latents, height, width, dtype, device, generator, latents=None):
        if self.noise_mix is None or latents is not None:
            return super().prepare_latents(batch_size, num_channels_latents, height, width, dtype, device, generator,
                                           latents)
        shape = (1, num_channels_latents, int(height) // self.vae_scale_factor, int(width) // self.vae_scale_factor)
        # The same draws, in the same order, as randn_tensor with a list of CPU generators.
        plain = [randn_tensor(shape, generator=g, device=torch.device("cpu"), dtype=dtype) for g in generator]
        mixed = self._mixed(plain, lambda seed: initial_noise(seed, shape, dtype))
        return super().prepare_latents(batch_size, num_channels_latents, height, width, dtype, device, generator,
                                       mixed.to(device))


class MixingImg2Img(_NoiseMix, StableDiffusionXLImg2ImgPipeline):
    def prepare_latents(self, image, timestep, batch_size, num_images_per_prompt, dtype, device, generator=None,
                        add_noise=True):
        if self.noise_mix is None or not add_noise:
            return super().prepare_latents(image, timestep, batch_size, num_images_per_prompt, dtype, device,
                                           generator, add_noise)
        # The init latents consume each generator's first draw (the VAE posterior sample), as in a plain run.
        init = super().prepare_latents(image, timestep, batch_size, num_images_per_prompt, dtype, device, generator,
                                       add_noise=False)
        shape = (1, *init.shape[1:])
        plain = [randn_tensor(shape, generator=g, device=torch.device("cpu"), dtype=dtype) for g in generator]

        def end_noise(seed: int) -> torch.Tensor:
            # seed_end's noise as its own plain img2img run would draw it: after its VAE posterior sample.
            end_generator = torch.Generator("cpu").manual_seed(seed)
            super(MixingImg2Img, self).prepare_latents(image[:1], timestep[:1], 1, 1, dtype, device, [end_generator],
                                                       add_noise=False)
            return randn_tensor(shape, generator=end_generator, device=torch.device("cpu"), dtype=dtype)

        return self.scheduler.add_noise(init, self._mixed(plain, end_noise).to(device), timestep)


MIXING_PIPELINES = {"txt2img": MixingTxt2Img, "img2img": MixingImg2Img}
