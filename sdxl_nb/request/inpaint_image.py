"""A1111's inpaint image steps (mask blur, crop region, fill, overlay), on PIL images; no torch."""

from __future__ import annotations

from dataclasses import dataclass


def blurred_mask(mask, blur: int):
    """A1111's mask blur (processing.py, StableDiffusionProcessingImg2Img.init, 1.6+): cv2.GaussianBlur with sigma
    `blur` along x, then along y, each with a kernel of 2 * int(2.5 * blur + 0.5) + 1 pixels."""
    if not blur:
        return mask
    import cv2
    import numpy as np
    from PIL import Image

    kernel = 2 * int(2.5 * blur + 0.5) + 1
    pixels = cv2.GaussianBlur(np.array(mask), (kernel, 1), blur)
    pixels = cv2.GaussianBlur(pixels, (1, kernel), blur)
    return Image.fromarray(pixels)


def crop_region(mask, pad: int) -> tuple[int, int, int, int] | None:
    """The box around every non-zero mask pixel, `pad` wider on each side within the image (A1111's
    masking.get_crop_region_v2); None for a blank mask."""
    box = mask.getbbox()
    if not box:
        return None
    x1, y1, x2, y2 = box
    width, height = mask.size
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, width), min(y2 + pad, height)


def expand_crop_region(region, width: int, height: int, image_width: int, image_height: int):
    """The region grown to the job's aspect ratio, kept inside the image (A1111's masking.expand_crop_region)."""
    x1, y1, x2, y2 = region
    if (x2 - x1) / (y2 - y1) > width / height:
        diff = int((x2 - x1) / (width / height) - (y2 - y1))
        y1, y2 = _grow(y1 - diff // 2, y2 + diff - diff // 2, image_height)
    else:
        diff = int((y2 - y1) * (width / height) - (x2 - x1))
        x1, x2 = _grow(x1 - diff // 2, x2 + diff - diff // 2, image_width)
    return x1, y1, x2, y2


def _grow(low: int, high: int, limit: int) -> tuple[int, int]:
    if high >= limit:  # shifted back inside, then cut at the far edge if still too long
        low, high = low - (high - limit), limit
    if low < 0:
        low, high = 0, high - low
    return low, min(high, limit)


def _resize(image, width: int, height: int):
    from PIL import Image

    return image.resize((width, height), resample=Image.Resampling.LANCZOS)


def resize_fill(image, width: int, height: int):
    """A1111's images.resize_image mode 2 ("resize and fill", no upscaler): scaled to fit, centred, the edges
    stretched into the margins. An RGB image comes back (A1111 pastes onto a new RGB image)."""
    from PIL import Image

    ratio, source = width / height, image.width / image.height
    src_w = width if ratio < source else image.width * height // image.height
    src_h = height if ratio >= source else image.height * width // image.width
    resized = _resize(image, src_w, src_h)
    result = Image.new("RGB", (width, height))
    result.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < source:
        fill = height // 2 - src_h // 2
        if fill > 0:
            result.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            result.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                         box=(0, fill + src_h))
    elif ratio > source:
        fill = width // 2 - src_w // 2
        if fill > 0:
            result.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            result.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                         box=(fill + src_w, 0))
    return result


def resize_crop(image, width: int, height: int):
    """A1111's images.resize_image mode 1 ("crop and resize"): scaled to cover, centred, the overflow cut."""
    from PIL import Image

    ratio, source = width / height, image.width / image.height
    src_w = width if ratio > source else image.width * height // image.height
    src_h = height if ratio <= source else image.height * width // image.width
    result = Image.new("RGB", (width, height))
    result.paste(_resize(image, src_w, src_h), box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    return result


def fill_masked(image, mask):
    """A1111's masking.fill ("Masked content: fill"): the masked area painted with ever finer blurs of the rest."""
    from PIL import Image, ImageFilter, ImageOps

    result = Image.new("RGBA", image.size)
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return result.convert("RGB")


def latent_mask(mask, latent_size: tuple[int, int]):
    """A1111's latent mask (`latmask`): the job-size mask scaled to the latent grid (Pillow's bicubic, A1111's
    `resize` default), then rounded: a bool array (height, width), True = repaint."""
    import numpy as np
    from PIL import Image

    small = mask.convert("RGB").resize(latent_size, resample=Image.Resampling.BICUBIC)
    return np.around(np.asarray(small, dtype=np.float32)[..., 0] / 255) > 0


@dataclass
class Prepared:
    """What an inpaint job sends to the model and what it pastes the result back into."""

    image: object  # RGB at the job's size: the init image (its crop for "Only masked"), filled when asked
    mask: object  # L at the job's size: the blurred mask (cropped and scaled for "Only masked")
    overlay: object  # RGBA at the output size: the original where it is kept, transparent where repainted
    paste: tuple[int, int, int, int] | None  # (x, y, width, height) the job-size result goes to ("Only masked")

    def pipeline_mask(self, scale: int):
        """A mask whose every scale x scale block is A1111's latent-mask value, so a pipeline that binarizes and
        takes one pixel per latent (diffusers' SDXL inpaint) blends exactly where A1111 does."""
        import numpy as np
        from PIL import Image

        width, height = self.mask.size
        grid = latent_mask(self.mask, (width // scale, height // scale))
        blocks = np.kron(grid.astype(np.uint8) * 255, np.ones((scale, scale), dtype=np.uint8))
        full = np.zeros((height, width), dtype=np.uint8)
        full[: blocks.shape[0], : blocks.shape[1]] = blocks
        return Image.fromarray(full)

    def finish(self, generated):
        """The output: the result (scaled back into its crop for "Only masked"), the original composited on top
        outside the mask (A1111's processing.apply_overlay)."""
        from PIL import Image

        if self.paste is not None:
            x, y, width, height = self.paste
            base = Image.new("RGBA", self.overlay.size)
            base.paste(resize_crop(generated, width, height), (x, y))
            generated = base
        result = generated.convert("RGBA")
        result.alpha_composite(self.overlay)
        return result.convert("RGB")


def _overlay(image, mask_for_overlay):
    """The original, premultiplied by 'not masked', as A1111 builds its overlay images."""
    from PIL import Image, ImageOps

    overlay = Image.new("RGBa", image.size)
    overlay.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay.convert("L")))
    return overlay.convert("RGBA")


def prepare(init, mask, settings, width: int, height: int) -> Prepared:
    """A1111's StableDiffusionProcessingImg2Img.init for one init image (RGB) and its mask (L, same size): blur,
    the "Only masked" crop, the overlay, and the masked-content fill."""
    import numpy as np
    from PIL import Image

    blurred = blurred_mask(mask, settings.mask_blur)
    paste = None
    if settings.only_masked:
        region = crop_region(blurred, settings.padding)
        if region is None:
            from sdxl_nb.errors import InputError

            raise InputError("the mask is blank, so 'Only masked' has no area to inpaint")
        region = expand_crop_region(region, width, height, *blurred.size)
        x1, y1, x2, y2 = region
        job_mask = resize_fill(blurred.crop(region), width, height).convert("L")
        overlay = _overlay(init, blurred)
        image = resize_fill(init.crop(region), width, height)
        paste = (x1, y1, x2 - x1, y2 - y1)
    else:
        job_mask = blurred if blurred.size == (width, height) else _resize(blurred, width, height)
        image = init if init.size == (width, height) else _resize(init, width, height)
        # Whole picture: the overlay mask is the blurred mask doubled, so the paste-back starts halfway out.
        doubled = np.clip(np.asarray(job_mask, dtype=np.float32) * 2, 0, 255).astype(np.uint8)
        overlay = _overlay(image, Image.fromarray(doubled))
    if settings.masked_content != "original":  # A1111 fills for fill, latent noise and latent nothing alike
        image = fill_masked(image, job_mask)
    return Prepared(image=image, mask=job_mask, overlay=overlay, paste=paste)
