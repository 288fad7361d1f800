"""An inpaint job's model inputs and paste-back, as A1111 makes them (request/inpaint_image.py), for diffusers."""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from sdxl_nb.request.inpaint_image import latent_mask, prepare
from sdxl_nb.request.resolve import ResolvedRequest


class InpaintInputs:
    """Blur, crop, fill and overlay made once per run; `shared` and `per_call` are the pipeline's arguments,
    `finish` pastes each decoded image back over the original."""

    def __init__(self, pipe, r: ResolvedRequest):
        with Image.open(r.init_image.path) as image:
            init = image.convert("RGB")
        with Image.open(r.mask_image.path) as image:
            mask = image.convert("L")
        if mask.size != init.size:
            mask = mask.resize(init.size, Image.Resampling.NEAREST)
        self.pipe, self.settings = pipe, r.inpaint
        self.prepared = prepare(init, mask, r.inpaint, r.width, r.height)
        self.nine_channels = pipe.unet.config.in_channels == 9
        self.latent = r.inpaint.masked_content in ("latent noise", "latent nothing")

    def shared(self) -> dict:
        """The image (filled for fill and the latent modes) and the mask every call of the run shares. A 4-channel
        UNet gets a mask whose latent pixels are A1111's rounded latent mask; a 9-channel one the blurred mask."""
        p = self.prepared
        mask = p.mask if self.nine_channels else p.pipeline_mask(self.pipe.vae_scale_factor)
        return {"image": p.image, "mask_image": mask}

    @torch.no_grad()
    def per_call(self, specs) -> dict:
        """Latent noise / latent nothing: the init latents with the masked latents replaced by the image's seed
        noise or zeros (A1111's init_latent * mask + noise * nmask), given to the pipeline as the image."""
        if not self.latent:
            return {}
        pipe, p = self.pipe, self.prepared
        pixels = pipe.image_processor.preprocess(p.image).to(pipe._execution_device, dtype=pipe.vae.dtype)
        latents, masked = [], []
        width, height = p.mask.size
        keep = torch.from_numpy(~latent_mask(p.mask, (width // pipe.vae_scale_factor,
                                                      height // pipe.vae_scale_factor)))
        for spec in specs:
            # The VAE sample and the noise each from the image's own seed, apart from the pipeline's generators.
            encoded = pipe._encode_vae_image(pixels, generator=torch.Generator("cpu").manual_seed(spec.seed))
            keep_mask = keep.to(encoded.device, encoded.dtype)
            fill = torch.zeros_like(encoded) if self.settings.masked_content == "latent nothing" else randn_tensor(
                encoded.shape, generator=torch.Generator("cpu").manual_seed(spec.seed), device=encoded.device,
                dtype=encoded.dtype)
            latents.append(encoded * keep_mask + fill * (1 - keep_mask))
            if self.nine_channels:  # its conditioning image: the filled pixels outside the mask
                masked_pixels = pixels * (pipe.mask_processor.preprocess(p.mask).to(pixels.device) < 0.5)
                masked.append(pipe._encode_vae_image(masked_pixels.to(pixels.dtype),
                                                     generator=torch.Generator("cpu").manual_seed(spec.seed)))
        args = {"image": torch.cat(latents)}
        if masked:
            args["masked_image_latents"] = torch.cat(masked)
        return args

    def finish(self, image):
        return self.prepared.finish(image)
