"""The hires fix's second pass on the local engine: upscale the first pass (latents, or pixels), then img2img."""

from __future__ import annotations

import torch

from sdxl_nb.backends.local.decode import decode_guarded
from sdxl_nb.backends.local.upscale import upscale_to
from sdxl_nb.errors import GenerationError


class HiresPass:
    """Runs after each chunk's first pass (and after a refiner, in A1111's order), on the latents it made.

    Latent upscalers interpolate the latents as A1111's "Latent" modes do; pixel ones decode (under the NaN
    guard), upscale the images (Lanczos, or a model then Lanczos to the exact size) and let img2img encode
    them again. The second pass uses each image's own seed again (fresh CPU generators), as A1111 does.
    """

    def __init__(self, engine, loaded, request, first_pipe):
        self.engine, self.fix, self.first_pipe = engine, request.hires, first_pipe
        # ControlNets guide both passes, as A1111's ControlNet does by default; their maps are made at the new size.
        self.controls = request.controlnets
        self.pipe = engine.pipeline(loaded, "img2img", controls=self.controls)
        self.pipe.scheduler = engine.make_scheduler(loaded, request.scheduler.cls, request.scheduler.kwargs)
        self.first_steps = request.steps  # the first pass's steps as it ran (set by progress_span)
        # A refiner takes over within this pass (A1111's default hires_fix_refiner_pass "second pass"): the base's
        # img2img stops at the switch, cut where refiner_split says (refiner.RefinerStage runs the rest).
        self.denoising_end = None
        if request.refiner is not None and request.refiner_switch < 1:
            from sdxl_nb.backends.local.refiner_split import denoising_point, switch_by

            self.denoising_end = denoising_point(self.pipe.scheduler, self.fix.schedule_steps, request.refiner_switch,
                                                 self.fix.denoise, switch_by(request))

    def progress_span(self, pipe, total: int) -> tuple[int, int]:
        """(steps before, steps after) a pass's own steps in the job's progress: the first pass is followed by
        the hires steps; the hires pass follows the first pass's."""
        if pipe is self.pipe:
            return self.first_steps, 0
        self.first_steps = total
        return 0, self.fix.steps

    def upscaled(self, latents: torch.Tensor, labels: list[str]):
        """What the second pass starts from: latents at the new size, or the upscaled images. A "Hires resize" to
        another aspect ratio upscales to cover it, then keeps the centre window (config.hires HiresFix.crop)."""
        fix = self.fix
        width, height = fix.upscaled_size
        crop = fix.crop
        if fix.upscaler.kind == "latent":
            size = (height // 8, width // 8)
            latents = torch.nn.functional.interpolate(latents, size=size, mode=fix.upscaler.method, antialias=False)
            if crop:
                x, y = crop[0] // 8, crop[1] // 8
                latents = latents[:, :, y:y + fix.height // 8, x:x + fix.width // 8]
            return latents
        decoded = decode_guarded(self.first_pipe, latents, labels)
        bad = [f"{label}: {problem}" for label, problem in zip(labels, decoded.problems, strict=True) if problem]
        if bad:
            raise GenerationError(f"the first pass decoded to a bad image before the hires upscale ({'; '.join(bad)})")
        images = [upscale_to(image, fix.upscaler, (width, height), self.engine.device) for image in decoded.images]
        if crop:
            box = (crop[0], crop[1], crop[0] + fix.width, crop[1] + fix.height)
            images = [image.crop(box) for image in images]
        return images

    def __call__(self, latents: torch.Tensor, arguments: dict, labels: list[str], **call) -> torch.Tensor:
        """The second pass's latents; `arguments` are the first pass's for this chunk (prompts, fresh generators)."""
        args = {key: value for key, value in arguments.items() if key not in ("width", "height")}
        args.update(image=self.upscaled(latents, labels), strength=self.fix.denoise,
                    num_inference_steps=self.fix.schedule_steps, output_type="latent")
        if self.denoising_end is not None:
            args["denoising_end"] = self.denoising_end
        if self.controls:  # the first pass (txt2img) gave its maps as `image`: here they are the control image
            from sdxl_nb.request.control_maps import unit_map

            maps = [unit_map(unit, (self.fix.width, self.fix.height)) for unit in self.controls]
            args["control_image"] = maps[0] if len(maps) == 1 else maps
        self.pipe.noise_mix = None
        return self.engine.call_pipeline(self.pipe, **args, **call).images
