"""A1111's inpaint settings in stock ComfyUI nodes: blurred mask, masked content, the original pasted back."""

from __future__ import annotations

from sdxl_nb.errors import InputError

MAX_COMFY_BLUR = 10  # ImageBlur's sigma goes to 10 (its radius to 31)
ONLY_MASKED_REFUSAL = ("inpaint area 'Only masked' cannot be exported to ComfyUI: stock ComfyUI has no node that "
                       "crops around a mask, inpaints the crop at the job's size and pastes it back; use 'Whole "
                       "picture', or run the job on the local engine")


def check_inpaint(r) -> None:
    """Refuse, in one line, inpaint settings stock ComfyUI nodes cannot carry."""
    settings = getattr(r, "inpaint", None)
    if settings is None:
        return
    if settings.only_masked:
        raise InputError(ONLY_MASKED_REFUSAL)
    if settings.mask_blur > MAX_COMFY_BLUR:
        raise InputError(f"mask blur {settings.mask_blur} cannot be exported to ComfyUI (its ImageBlur node's sigma "
                         f"goes to {MAX_COMFY_BLUR}); accepted there: 0 to {MAX_COMFY_BLUR}")


def inpaint_latent(g, r, pixels: list, vae_link: list, mask: list, notes: list[str]) -> tuple[list, list | None]:
    """(the sampler's latent, the mask the original is pasted back through, or None for records without settings).

    The mask is blurred as A1111 blurs it (a Gaussian of sigma `mask_blur`, kernel 2 * int(2.5 * blur + 0.5) + 1,
    via ImageBlur), thresholded at 0.5 for the sampler (A1111 rounds its latent mask), and doubled for the
    paste-back (A1111's Whole picture overlay: MaskComposite add clamps at 1). Original content: VAEEncode +
    SetLatentNoiseMask; fill, latent noise and latent nothing: VAEEncodeForInpaint, which greys the masked pixels."""
    settings = getattr(r, "inpaint", None)
    if settings is None:  # a record from before the settings: the graph it was exported with
        return g.add("SetLatentNoiseMask", samples=g.add("VAEEncode", pixels=pixels, vae=vae_link), mask=mask), None
    check_inpaint(r)
    mask = _blurred(g, settings, mask)
    sampler_mask = g.add("ThresholdMask", mask=mask, value=0.5)
    if settings.masked_content == "original":
        latent = g.add("SetLatentNoiseMask", samples=g.add("VAEEncode", pixels=pixels, vae=vae_link),
                       mask=sampler_mask)
    else:
        latent = g.add("VAEEncodeForInpaint", pixels=pixels, vae=vae_link, mask=sampler_mask, grow_mask_by=0)
        notes.append(f"masked content {settings.masked_content!r}: ComfyUI's VAEEncodeForInpaint greys the masked "
                     "pixels out before encoding (A1111 fills them with blurred surroundings"
                     + {"fill": ")", "latent noise": ", then puts seed noise in the latents)",
                        "latent nothing": ", then zeroes the latents)"}[settings.masked_content])
    return latent, _overlay(g, mask)


def inpainting_model_overlay(g, r, mask: list) -> list | None:
    """The paste-back mask of a 9-channel inpainting model's job (its latents come from InpaintModelConditioning):
    the same blurred, doubled mask as for other models; None for records without settings."""
    settings = getattr(r, "inpaint", None)
    if settings is None:
        return None
    check_inpaint(r)
    return _overlay(g, _blurred(g, settings, mask))


def _blurred(g, settings, mask: list) -> list:
    if not settings.mask_blur:
        return mask
    image = g.add("MaskToImage", mask=mask)
    image = g.add("ImageBlur", "Mask blur", image=image, blur_radius=int(2.5 * settings.mask_blur + 0.5),
                  sigma=float(settings.mask_blur))
    return g.add("ImageToMask", image=image, channel="red")


def _overlay(g, mask: list) -> list:
    return g.add("MaskComposite", "Overlay mask", destination=mask, source=mask, x=0, y=0, operation="add")


def paste_back(g, decoded: list, pixels: list, overlay: list | None, batch: int) -> list:
    """The decoded images with the original composited back outside the mask (A1111's apply_overlay)."""
    if overlay is None:
        return decoded
    original = g.add("RepeatImageBatch", image=pixels, amount=batch) if batch > 1 else pixels
    return g.add("ImageCompositeMasked", "Paste back the original", destination=original, source=decoded, x=0, y=0,
                 resize_source=False, mask=overlay)
