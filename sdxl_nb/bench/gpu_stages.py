"""What the newer capabilities cost per job on full-size SDXL: the refiner hand-off, the hires second pass and
switching LoRA sets, through the product on the base from the bench's hub cache (HF_HUB_CACHE must point at it)."""

from __future__ import annotations

import tempfile

from sdxl_nb.bench.gpu_checks import BASE_ID
from sdxl_nb.bench.gpu_models import REFINER_ID, unet_attention_layers, write_bench_loras
from sdxl_nb.bench.lora_checks import lora_switching
from sdxl_nb.bench.stage_checks import second_stages


def stage_costs(*, device: str = "cuda", width: int = 1024, height: int = 1024, steps: int = 30, repeats: int = 3,
                lora_repeats: int = 5, lora_rank: int = 8, switch: float = 0.8, hires_scale: float = 1.5,
                hires_steps: int = 15, hires_denoise: float = 0.5, on_line=print, into: dict | None = None,
                checkpoint=None) -> dict:
    """The second stages (A1111-typical hires: x1.5 Latent, 15 steps at denoise 0.5; refiner from 0.8), then LoRA
    switching with two rank-`lora_rank` LoRAs on every UNet attention projection. The engine runs the default
    options (no fused QKV: LoRAs refuse it), so these are eager fp16 figures on CUDA. The figures go into `into`
    as they are taken, with `checkpoint()` after each half (a failing LoRA half keeps the second stages')."""
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    engine = Engine(device=device)
    loaded = engine.load(find_model(BASE_ID, load_presets()))
    result = into if into is not None else {}
    result.update(model=BASE_ID, refiner=REFINER_ID)
    # First, before any LoRA adapter wraps the UNet's layers: the plain, refiner and hires jobs.
    result.update(second_stages(engine, width=width, height=height, steps=steps, repeats=repeats, model=BASE_ID,
                                refiner=REFINER_ID, switch=switch, hires_scale=hires_scale, hires_steps=hires_steps,
                                hires_denoise=hires_denoise))
    refiner = loaded.refiners.get(REFINER_ID)
    if refiner is not None:  # what the hand-off shares with the base (the VAE, text_encoder_2) and what it adds
        result.update(refiner_shared=list(refiner.shared), refiner_extra_bytes=refiner.extra_bytes)
    on_line(f"  plain job {result['stage_plain_s']:.3f} s; refiner hand-off {result['refiner_handoff_ratio']:.3f}x; "
            f"hires pass {result['hires_pass_ratio']:.3f}x")
    if checkpoint is not None:
        checkpoint()
    with tempfile.TemporaryDirectory(prefix="sdxl_nb-loras-") as folder:
        files = write_bench_loras(folder, loaded.pipe.unet, rank=lora_rank)
        result.update(lora_rank=lora_rank, lora_layers=len(unet_attention_layers(loaded.pipe.unet)),
                      lora_file_bytes=files[0].stat().st_size)
        result.update(lora_switching(engine, lora_repeats, width=width, height=height, steps=steps, model=BASE_ID,
                                     files=files))
    on_line(f"  LoRA switch {result['lora_switch_ms']:.1f} ms per job ({result['lora_switch_share']:.2%} of a "
            f"{result['lora_switch_job_ms'] / 1000:.3f} s job); {result['lora_layers']} layers, rank {lora_rank}")
    return result  # the engine goes with this frame; the runner then frees the GPU memory it held
