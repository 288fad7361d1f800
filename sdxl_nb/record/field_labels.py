"""The label a person reads for each request field and PNG reader note (A1111's words where A1111 has them)."""

from __future__ import annotations

# Every view that names a request field (PNG Info, Compare, Sweep's axes, the job description) takes its label
# from here: one name per setting across the lab.
FIELD_LABELS = {
    "mode": "Mode", "model": "Model", "scheduler": "Sampler", "schedule_type": "Schedule type", "style": "Style",
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "steps": "Steps", "cfg": "CFG scale", "seed": "Seed",
    "width": "Width", "height": "Height", "resolution": "Resolution", "batch": "Batch size",
    "strength": "Denoising strength", "init_image": "Init image", "mask_image": "Mask", "loras": "LoRAs",
    "mask_blur": "Mask blur", "masked_content": "Masked content", "inpaint_area": "Inpaint area",
    "only_masked_padding": "Masked area padding", "refiner": "Refiner", "refiner_switch": "Refiner switch at",
    "refiner_switch_by": "Refiner switch by", "hires_scale": "Hires upscale", "hires_resize": "Hires resize",
    "hires_upscaler": "Hires upscaler", "hires_steps": "Hires steps", "hires_denoise": "Hires denoising strength",
    "ip_adapter": "IP-Adapter", "ip_images": "IP-Adapter images", "ip_scale": "IP-Adapter scale",
    "controlnets": "ControlNet",
}
# What the PNG readers (record/png_params.py) say beside the request fields, by their key.
NOTE_LABELS = {"upscale": "Upscale", "animation": "Animation", "latent": "Init image", "sampler": "Sampler",
               "checkpoint": "Checkpoint", "refiner": "Refiner"}


def label(key: str) -> str:
    """The label of a request field or a PNG reader's note; an A1111 key (`Lora hashes`) is its own label."""
    return FIELD_LABELS.get(key) or NOTE_LABELS.get(key) or key


def field_options(fields) -> list[tuple[str, str]]:
    """Dropdown options (label, field) for request fields: the label shown, the field name kept as the value."""
    return [(label(name), name) for name in fields]
