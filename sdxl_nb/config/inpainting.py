"""What a 9-channel inpainting model runs: every mode as an inpaint (A1111's rule), and the jobs it cannot run; no torch."""

from __future__ import annotations

# txt2img and img2img on an inpainting model run as an inpaint with a full mask and a blank (gray) masked image:
# A1111's txt2img_image_conditioning / img2img_image_conditioning (modules/processing.py: mask of ones, masked image
# 0.5 gray) and ComfyUI's BaseModel.concat_cond with no denoise mask (ones, blank_inpaint_image_like) do the same.
FULL_MASK_RULE = "implemented: txt2img and img2img run as an inpaint with a full mask (A1111's rule)"


def inpainting_model_problem(plan) -> str | None:
    """Why a plan cannot run on its inpainting model (one line), or None; None for every other model."""
    r = plan.request
    if not getattr(r.model, "inpainting", False):
        return None
    what = []
    if r.hires is not None:
        what.append("hires fix (its second pass has no mask conditioning here)")
    if r.controlnets:
        what.append("ControlNets")
    if not plan.plain:
        what.append("per-image prompts or noise mixes (animations, prompt travel)")
    if not what:
        return None
    return (f"model {r.model.id!r} is a 9-channel inpainting model and cannot run {' or '.join(what)}; accepted: "
            "txt2img, img2img and inpaint jobs on it, or a model that is not an inpainting one")
