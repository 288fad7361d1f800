"""9-channel inpainting UNets on the local engine: diffusers' inpaint pipeline for every mode, with a full mask for
txt2img and img2img (config.inpainting.FULL_MASK_RULE)."""

from __future__ import annotations

from PIL import Image

from sdxl_nb.config.checkpoints import INPAINT_IN_CHANNELS

# A1111's txt2img_image_conditioning fills the masked image with 0.5 (gray); with a full mask diffusers masks the
# whole image away (init_image * (mask < 0.5)), so any image gives that gray.
_GRAY = (128, 128, 128)


def is_inpainting(pipe) -> bool:
    """Whether a pipeline's UNet reads latents + mask + masked-image latents (StableDiffusionXLInpaintPipeline
    concatenates them when unet.config.in_channels == 9)."""
    return getattr(pipe.unet.config, "in_channels", 4) == INPAINT_IN_CHANNELS


def pipeline_mode(pipe, mode: str) -> str:
    """The pipeline a mode runs with on this model: an inpainting UNet runs every mode through the inpaint one."""
    return "inpaint" if is_inpainting(pipe) else mode


def model_arguments(pipe, r, args: dict) -> dict:
    """A call's arguments for this model: txt2img and img2img on an inpainting UNet get a full white mask (strength 1
    and a gray image for txt2img: pure noise, as txt2img starts), and the request's size; others unchanged."""
    if r.mode == "inpaint" or not is_inpainting(pipe):
        return args
    size = (r.width, r.height)
    extra = {"mask_image": Image.new("L", size, 255), "width": r.width, "height": r.height}
    if r.mode == "txt2img":
        extra.update(image=Image.new("RGB", size, _GRAY), strength=1.0)
    return {**args, **extra}
