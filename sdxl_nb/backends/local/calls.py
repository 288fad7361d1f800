"""Pipeline arguments for one call: the request's shared settings plus each image's seed, prompt and noise."""

from __future__ import annotations

import torch
from PIL import Image

from sdxl_nb.backends.base import ImageSpec
from sdxl_nb.backends.local.conditioning import PromptEncoder, run_shape
from sdxl_nb.backends.local.inpaint_model import model_arguments
from sdxl_nb.backends.local.ip_adapter import ip_adapter_arguments
from sdxl_nb.backends.local.mixing import lerp
from sdxl_nb.request.prompt_syntax import without_tags
from sdxl_nb.request.resolve import ResolvedRequest


def shared_arguments(r: ResolvedRequest) -> dict:
    """Keyword arguments every call of a request shares (all but prompts, generators and the image count)."""
    # Latents out: the decode runs under the NaN guard (decode.py), step for step as the pipeline would.
    args = dict(num_inference_steps=r.steps, guidance_scale=r.cfg, output_type="latent")
    if r.mode != "txt2img":
        args.update(image=load_rgb(r.init_image.path, (r.width, r.height)), strength=r.strength)
    if r.mode == "inpaint" and r.inpaint is None:  # a record from before A1111's inpaint settings: as it ran then
        args.update(mask_image=load_mask(r.mask_image.path, (r.width, r.height)))
    if r.mode != "img2img":  # img2img takes its size from the init image
        args.update(width=r.width, height=r.height)
    args.update(ip_adapter_arguments(r.ip_adapter))
    if r.controlnets:
        from sdxl_nb.backends.local.controlnet import control_arguments

        control_arguments(r, args)
    return args


class CallArguments:
    """Builds each call's arguments. A plain batch of plain prompts (no weighting syntax, one CLIP window, no
    embedding) sends the prompt text, as a bare diffusers call does; anything else sends embeddings built
    once per text per run: A1111's weighted, chunked conditioning (conditioning.PromptEncoder), or, for
    per-image prompts, blends or noise mixes of plain prompts, diffusers' own `encode_prompt`."""

    def __init__(self, pipe, r: ResolvedRequest, plain: bool, texts: list[str] | None = None,
                 vectors: dict | None = None):
        self.pipe, self.r, self.plain = pipe, r, plain
        self.shared = model_arguments(pipe, r, shared_arguments(r))
        self.inpaint = None  # A1111's inpaint: blur, crop, fill, then the original pasted back (inpaint_area.py)
        if r.mode == "inpaint" and r.inpaint is not None:
            from sdxl_nb.backends.local.inpaint_area import InpaintInputs

            self.inpaint = InpaintInputs(pipe, r)
            self.shared.update(self.inpaint.shared())
        self.embeddings: dict[str, tuple] = {}
        self.encoder = PromptEncoder(pipe, vectors)
        texts = texts or [r.styled_prompt, r.effective_negative_prompt]
        # Every text of the run is padded to the longest one, so image i's conditioning never depends on
        # which other images share its call, and cond and uncond have one length.
        self.chunks, self.weighted = run_shape(self.encoder, texts)

    def __call__(self, specs: list[ImageSpec]) -> dict:
        args = self._arguments(specs)
        return args if self.inpaint is None else {**args, **self.inpaint.per_call(specs)}

    def _arguments(self, specs: list[ImageSpec]) -> dict:
        # One CPU generator per image: image i depends on its own seed alone, on any device.
        generators = [torch.Generator("cpu").manual_seed(spec.seed) for spec in specs]
        if self.plain and not self.weighted:
            # An empty negative goes as None so SDXL uses its zeroed negative conditioning, as diffusers intends.
            return dict(self.shared, prompt=without_tags(self.r.styled_prompt),
                        negative_prompt=self.r.effective_negative_prompt or None,
                        num_images_per_prompt=len(specs), generator=generators)
        if self.plain:
            embeds = self._encode(self.r.styled_prompt)
            return dict(self.shared, prompt_embeds=embeds[0], negative_prompt_embeds=embeds[1],
                        pooled_prompt_embeds=embeds[2], negative_pooled_prompt_embeds=embeds[3],
                        num_images_per_prompt=len(specs), generator=generators)
        conditioning = [self._conditioning(spec) for spec in specs]

        def stacked(position: int):
            parts = [c[position] for c in conditioning]
            return None if parts[0] is None else torch.cat(parts)

        return dict(self.shared, prompt_embeds=stacked(0), negative_prompt_embeds=stacked(1),
                    pooled_prompt_embeds=stacked(2), negative_pooled_prompt_embeds=stacked(3), generator=generators)

    @staticmethod
    def noise_mix(specs: list[ImageSpec]) -> list[tuple[int, float] | None] | None:
        mixes = [(spec.seed_end, spec.t) if spec.mixes_noise else None for spec in specs]
        return mixes if any(mixes) else None

    def _encode(self, text: str) -> tuple:
        """(prompt, negative, pooled, negative pooled) embeddings of a text, made once per run."""
        if text not in self.embeddings:
            do_cfg = self.r.cfg > 1 and self.pipe.unet.config.time_cond_proj_dim is None
            negative = self.r.effective_negative_prompt
            if not self.weighted:
                with torch.no_grad():
                    self.embeddings[text] = self.pipe.encode_prompt(
                        prompt=without_tags(text), device=self.pipe._execution_device, num_images_per_prompt=1,
                        do_classifier_free_guidance=do_cfg, negative_prompt=negative or None)
            else:
                positive = self.encoder.encode(text, self.chunks)
                if not do_cfg:
                    uncond, uncond_pooled = None, None
                elif not negative and self.pipe.config.force_zeros_for_empty_prompt:
                    uncond, uncond_pooled = torch.zeros_like(positive.hidden), torch.zeros_like(positive.pooled)
                else:
                    encoded = self.encoder.encode(negative, self.chunks)
                    uncond, uncond_pooled = encoded.hidden, encoded.pooled
                self.embeddings[text] = (positive.hidden, uncond, positive.pooled, uncond_pooled)
        return self.embeddings[text]

    def _conditioning(self, spec: ImageSpec) -> tuple:
        """(prompt, negative, pooled, negative pooled) embeddings; a blend moves both encoders' outputs by t."""
        start = self._encode(spec.prompt)
        if not spec.blends_prompt:
            return start
        end = self._encode(spec.prompt_end)
        # The negative side is the same text at both ends, so it is used as is (a blend could move its last bit).
        return (lerp(start[0], end[0], spec.t), start[1], lerp(start[2], end[2], spec.t), start[3])


def load_rgb(path: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return rgb if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS)


def load_mask(path: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        mask = image.convert("L")
    return mask if mask.size == size else mask.resize(size, Image.Resampling.NEAREST)
