"""The GPU speed recipe on full-size SDXL (random weights): fp16/bf16, SDPA, channels-last, fused QKV, compile, fp16 VAE."""

from __future__ import annotations

import time

RECIPE = ("fp16 default", "bf16 default", "+ SDPA check", "+ channels_last", "+ fused QKV", "+ torch.compile",
          "+ fp16-safe VAE decode")


def _timed_run(pipe, *, width: int, height: int, steps: int, cfg: float):
    """One image; returns (seconds, denoising steps per second from step-end timestamps)."""
    import torch

    stamps = []

    def on_step(_pipe, _i, _t, kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return kwargs

    started = time.perf_counter()
    pipe(prompt="a lighthouse on a cliff at dusk, cinematic", negative_prompt="blurry", num_inference_steps=steps,
         guidance_scale=cfg, width=width, height=height, generator=[torch.Generator("cpu").manual_seed(0)],
         callback_on_step_end=on_step, output_type="pil")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    its = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return seconds, its


def sdpa_state(pipe) -> dict:
    """Which attention implementation the UNet uses and which SDPA kernels torch may pick."""
    import torch

    processors = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    state = {"unet_attention_processors": sorted(processors)}
    if torch.cuda.is_available():
        state.update(flash=torch.backends.cuda.flash_sdp_enabled(),
                     mem_efficient=torch.backends.cuda.mem_efficient_sdp_enabled(),
                     math=torch.backends.cuda.math_sdp_enabled(),
                     cudnn=getattr(torch.backends.cuda, "cudnn_sdp_enabled", lambda: None)())
    return state


def run_recipe(*, device: str = "cuda", architecture: str = "full", width: int = 1024, height: int = 1024,
               steps: int = 30, cfg: float = 7.0, repeats: int = 3, recipe: tuple[str, ...] = RECIPE,
               on_line=print) -> dict:
    """Measure each step of the recipe cumulatively; s/image and it/s are medians of `repeats` runs.

    `architecture="tiny"` runs the same code on the embedded model (tests exercise it on CPU).
    """
    import statistics

    import torch

    from sdxl_nb.engine.environment import peak_memory, reset_peak_memory

    build_started = time.perf_counter()
    pipe = _build(architecture, device, torch.float16)
    result = {"architecture": architecture, "device": device, "size": f"{width}x{height}", "steps": steps,
              "cfg": cfg, "batch": 1, "repeats": repeats, "build_s": time.perf_counter() - build_started,
              "recipe": []}
    if device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
    for name in recipe:
        compile_s = None
        if name == "bf16 default":
            pipe.to(dtype=torch.bfloat16)
        elif name == "+ SDPA check":
            pipe.to(dtype=torch.float16)  # the rest of the recipe builds on fp16
            result["sdpa"] = sdpa_state(pipe)
        elif name == "+ channels_last":
            pipe.unet.to(memory_format=torch.channels_last)
        elif name == "+ fused QKV":
            pipe.fuse_qkv_projections()
        elif name == "+ torch.compile":
            pipe.unet.compile_repeated_blocks(fullgraph=True)
        elif name == "+ fp16-safe VAE decode":
            # A VAE that is safe in fp16 (such as sdxl-vae-fp16-fix) needs no float32 upcast for decoding.
            pipe.vae.register_to_config(force_upcast=False)
        reset_peak_memory(device)
        first_s, _ = _timed_run(pipe, width=width, height=height, steps=steps, cfg=cfg)  # warm-up (compiles here)
        runs = [_timed_run(pipe, width=width, height=height, steps=steps, cfg=cfg) for _ in range(repeats)]
        s_image = statistics.median(r[0] for r in runs)
        if name == "+ torch.compile":
            compile_s = max(first_s - s_image, 0.0)
        row = {"step": name, "s_per_image": s_image, "it_per_s": statistics.median(r[1] for r in runs),
               "peak_memory_bytes": peak_memory(device), "first_run_s": first_s, "compile_s": compile_s,
               "dtype": str(pipe.unet.dtype).removeprefix("torch.")}
        result["recipe"].append(row)
        on_line(f"  {name:24} {s_image:8.3f} s/image {row['it_per_s']:7.2f} it/s "
                f"{row['peak_memory_bytes'] / 2**30:6.2f} GiB" + (f"  compile {compile_s:.1f} s" if compile_s else ""))
    return result


def _build(architecture: str, device: str, dtype):
    if architecture == "full":
        from sdxl_nb.engine.full_size import build_full_size_pipeline

        return build_full_size_pipeline(device, dtype)
    from sdxl_nb.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
