"""What the second stages cost per job: the refiner hand-off and the hires pass, against the same job without."""

from __future__ import annotations

import tempfile

from sdxl_nb.bench.timing import interleaved, median

PROMPT = "a lighthouse on a cliff at dusk"


def second_stages(engine, *, width: int, height: int, steps: int, repeats: int, model: str = "tiny-sdxl",
                  refiner: str = "tiny-sdxl-refiner", switch: float = 0.8, hires_scale: float = 2.0,
                  hires_denoise: float = 0.5, hires_steps: int | None = None) -> dict:
    """Median job times through the product: plain, with the refiner taking over at `switch` (same total steps),
    and with a hires pass of `hires_steps` (default `steps`) steps at `hires_scale`; each as a ratio to the plain
    job."""
    from sdxl_nb.jobs.generate import generate

    hires_steps = hires_steps or steps
    out = tempfile.mkdtemp(prefix="sdxl_nb-bench-")
    common = dict(prompt=PROMPT, model=model, width=width, height=height, steps=steps, seed=1, out_dir=out,
                  engine=engine)
    jobs = {
        "plain": lambda: generate(**common),
        "refiner": lambda: generate(**common, refiner=refiner, refiner_switch=switch),
        "hires": lambda: generate(**common, hires_scale=hires_scale, hires_steps=hires_steps, hires_denoise=hires_denoise,
                                  hires_upscaler="Latent"),
    }
    # interleaved's warm-up run keeps the one-time loads (the refiner's UNet, the img2img pipeline) out of the times
    times = {name: median(values) for name, values in interleaved(jobs, repeats).items()}
    return {"stage_plain_s": times["plain"], "stage_refiner_s": times["refiner"], "stage_hires_s": times["hires"],
            "refiner_handoff_ratio": times["refiner"] / times["plain"], "hires_pass_ratio": times["hires"] / times["plain"],
            "stage_settings": f"{model}, {width}x{height}, {steps} steps; refiner {refiner} from {switch:g}; hires "
                              f"x{hires_scale:g} Latent, {hires_steps} steps at denoise {hires_denoise:g}; {repeats} "
                              "interleaved repetitions after a warm-up"}
