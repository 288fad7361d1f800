"""Quality lint: settings that give grainy, noisy or black SDXL images (and what to use), prompts A1111 text misreads."""

from __future__ import annotations

from sdxl_nb.request.resolve import ResolvedRequest

HIGH_CFG = 9.0  # above this, non-turbo SDXL turns grainy and over-saturated
MIN_STEPS = 20  # below this, non-turbo SDXL images stay noisy or unfinished
TURBO_MAX_CFG = 1.0  # Turbo is distilled for cfg 0 (guidance off); above 1 it burns the image
TURBO_MAX_STEPS = 8  # Turbo is distilled for 1-4 steps; more adds nothing but artefacts
SUGGESTED = "DPM++ 2M SDE Karras, 30 steps, cfg 7-8"
FP16_SAFE_VAE = "madebyollin/sdxl-vae-fp16-fix"
A1111_NEGATIVE = "Negative prompt:"  # the line A1111's `parameters` text starts the negative prompt with
# Samplers that stay visibly noisy below a step count (scheduler class -> (label, minimum steps)).
NOISY_BELOW = {
    "LMSDiscreteScheduler": ("LMS", 30),
    "KDPM2DiscreteScheduler": ("DPM2", 25),
    "KDPM2AncestralDiscreteScheduler": ("DPM2 a", 25),
    "DDIMScheduler": ("DDIM", 25),
    "PNDMScheduler": ("PNDM", 25),
}


def empty_prompt_warning(prompt: str | None) -> str | None:
    """The warning for a prompt with no text (only the style's own words, if any, reach the model); else None."""
    if prompt and prompt.strip():
        return None
    return ("the prompt is empty: nothing you typed describes the image (only the style's own words are sent); "
            "suggested: type a prompt")


def lint(r: ResolvedRequest, *, dtype: str | None = None, vae_upcasts: bool | None = None,
         dedicated_vae: str | None = None) -> list[str]:
    """Warnings for a resolved request; each names what to use instead. Empty when nothing looks wrong.

    The step rules skip the embedded demo model: its tiny defaults are deliberate (it draws noise at any
    step count). The VAE rule needs the run's dtype and VAE (known once loaded); without them it is skipped.
    """
    warnings: list[str] = [w for w in (empty_prompt_warning(r.prompt),) if w]
    demo = r.model.source == "embedded"
    if r.model.turbo:
        if r.cfg > TURBO_MAX_CFG:
            warnings.append(f"cfg {r.cfg:g} on turbo model {r.model.id}: turbo is distilled for cfg 0 and burns "
                            f"the image above {TURBO_MAX_CFG:g}; suggested: cfg 0")
        if r.steps > TURBO_MAX_STEPS:
            warnings.append(f"{r.steps} steps on turbo model {r.model.id}: turbo is made for 1-4 steps; more "
                            f"add artefacts, not detail; suggested: 4 steps, cfg 0")
    else:
        if r.cfg > HIGH_CFG:
            warnings.append(f"cfg {r.cfg:g} is above {HIGH_CFG:g}: SDXL images come out grainy and over-saturated; "
                            f"suggested: cfg 7-8 ({SUGGESTED})")
        if r.steps < MIN_STEPS and not demo:
            warnings.append(f"{r.steps} steps is few for {r.model.id} (not a turbo model): images stay noisy and "
                            f"unfinished; suggested: 30 steps ({SUGGESTED})")
        noisy = NOISY_BELOW.get(r.scheduler.cls or "")
        if noisy and r.steps < noisy[1] and not demo:
            warnings.append(f"sampler {r.scheduler.name} ({noisy[0]}) is noisy below {noisy[1]} steps ({r.steps} "
                            f"asked); suggested: {SUGGESTED}")
    if any(line.startswith(A1111_NEGATIVE) for line in r.styled_prompt.split("\n")):
        # A1111's format cannot escape it: every reader takes that line and the rest for the negative prompt.
        warnings.append(f"a line of the prompt starts with {A1111_NEGATIVE!r}: A1111-format readers (PNG Info, "
                        "civitai, sd-parsers) will read the prompt's text from there on as the negative prompt; the "
                        "exact prompt is kept in the PNG's sdxl_nb chunk and in jobs.log")
    warnings += hires_warnings(r)
    if dtype == "float16" and vae_upcasts is False and not dedicated_vae:
        warnings.append(f"the VAE runs in float16 without an fp16-safe VAE: SDXL's VAE overflows in float16 "
                        f"(black or NaN images; the lab then decodes again in float32, slower); suggested: the "
                        f"dedicated VAE {FP16_SAFE_VAE} (hf download {FP16_SAFE_VAE})")
    return warnings


LATENT_MIN_DENOISE = 0.5  # below this, a latent upscale stays blurry (A1111's own hint for Latent upscalers)
HIRES_MAX_SIDE = 2048  # twice SDXL's training size: beyond it a second pass repeats subjects across the image


def hires_warnings(r: ResolvedRequest) -> list[str]:
    """The hires pass's pitfalls: a latent upscale denoised too little, a second pass far beyond SDXL's sizes."""
    fix = r.hires
    if fix is None:
        return []
    warnings = []
    if fix.upscaler.kind == "latent" and fix.denoise < LATENT_MIN_DENOISE:
        warnings.append(f"hires denoise {fix.denoise:g} with the {fix.upscaler.name} upscaler: latent upscales stay "
                        f"blurry below {LATENT_MIN_DENOISE:g}; suggested: denoise 0.5-0.7, or the Lanczos upscaler "
                        "(or a model) for low denoise")
    if max(fix.width, fix.height) > HIRES_MAX_SIDE and r.model.source != "embedded":
        warnings.append(f"the hires pass runs at {fix.width}x{fix.height}, beyond {HIRES_MAX_SIDE} px: SDXL repeats "
                        f"subjects across images this large; suggested: a scale of at most "
                        f"{HIRES_MAX_SIDE / max(r.width, r.height):.2g}, then `sdxl-nb upscale` for more pixels")
    return warnings
