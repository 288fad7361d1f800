"""The GPU speed recipe on full-size SDXL (random weights): fp16/bf16, SDPA, channels-last, fused QKV, compile, fp16 VAE."""

from __future__ import annotations

import time

RECIPE = ("fp16 default", "bf16 default", "+ SDPA check", "+ channels_last", "+ fused QKV", "+ torch.compile",
          "+ fp16-safe VAE decode", "+ CUDA graphs", "+ FP8")


def _timed_run(pipe, *, width: int, height: int, steps: int, cfg: float):
    """One image; returns (seconds, denoising steps per second between the first and last step ends)."""
    import torch

    cuda = pipe.device.type == "cuda"
    marks = []

    def on_step(_pipe, _i, _t, kwargs):
        # CUDA events are recorded on the stream, not waited for: a sync per step would stop the host from
        # queueing the next step while the GPU runs this one, and would slow what it measures.
        if cuda:
            marks.append(torch.cuda.Event(enable_timing=True))
            marks[-1].record()
        else:
            marks.append(time.perf_counter())
        return kwargs

    started = time.perf_counter()
    pipe(prompt="a lighthouse on a cliff at dusk, cinematic", negative_prompt="blurry", num_inference_steps=steps,
         guidance_scale=cfg, width=width, height=height, generator=[torch.Generator("cpu").manual_seed(0)],
         callback_on_step_end=on_step, output_type="pil")
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if len(marks) < 2:
        return seconds, float("nan")
    span = marks[0].elapsed_time(marks[-1]) / 1000 if cuda else marks[-1] - marks[0]
    return seconds, (len(marks) - 1) / span


def _image(pipe, *, width: int, height: int, steps: int, cfg: float):
    """One image of a fixed seed as uint8 pixels: what the float8 step is compared on."""
    import torch

    images = pipe(prompt="a lighthouse on a cliff at dusk, cinematic", negative_prompt="blurry", num_inference_steps=steps,
                  guidance_scale=cfg, width=width, height=height, generator=torch.Generator("cpu").manual_seed(1),
                  output_type="np").images
    return (images[0] * 255).round().clip(0, 255).astype("uint8")


def psnr_db(reference, image) -> float:
    """Peak signal-to-noise ratio of two uint8 images in dB (inf when identical)."""
    import math

    import numpy as np

    mse = float(np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def unet_step_profile(pipe, *, width: int, height: int, repeats: int = 5) -> dict:
    """One UNet call at CFG batch 2: GPU time (events) vs host time to queue it (launch-bound when close)."""
    import statistics

    import torch

    unet = pipe.unet
    inputs = _unet_inputs(unet.config, width, height, pipe.device, unet.dtype)
    host, gpu = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            queued = time.perf_counter()
            start.record()
            unet(**inputs)
            end.record()
            queued = time.perf_counter() - queued
            torch.cuda.synchronize()
            if i:  # the first call is a warm-up
                host.append(queued * 1000)
                gpu.append(start.elapsed_time(end))
    return {"unet_gpu_ms": statistics.median(gpu), "unet_host_ms": statistics.median(host)}


def unet_tflop_per_step(width: int = 1024, height: int = 1024) -> float:
    """Floating-point work of one full-size UNet call at CFG batch 2, counted on the meta device."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from sdxl_nb.backends.local.full_size import UNET_CONFIG

    with torch.device("meta"):
        unet = UNet2DConditionModel(**UNET_CONFIG).half()
        inputs = _unet_inputs(unet.config, width, height, "meta", torch.half)
        with FlopCounterMode(display=False) as counter:
            unet(**inputs)
    return counter.get_total_flops() / 1e12


def _unet_inputs(config, width: int, height: int, device, dtype) -> dict:
    """Keyword arguments for one SDXL UNet call at CFG batch 2 (random latents and text embeddings)."""
    import torch

    pooled_dim = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
    return {"sample": torch.randn(2, config.in_channels, height // 8, width // 8, device=device, dtype=dtype),
            "timestep": torch.tensor([500.0, 500.0], device=device),
            "encoder_hidden_states": torch.randn(2, 77, config.cross_attention_dim, device=device, dtype=dtype),
            "added_cond_kwargs": {
                "text_embeds": torch.randn(2, pooled_dim, device=device, dtype=dtype),
                "time_ids": torch.tensor([[height, width, 0, 0, height, width]] * 2, device=device, dtype=dtype)}}


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
               on_line=print, into: dict | None = None, checkpoint=None) -> dict:
    """Measure each step of the recipe cumulatively; s/image and it/s are medians of `repeats` runs.

    The figures go into `into` (default: a new dict), with `checkpoint()` after each row.

    `architecture="tiny"` runs the same code on the embedded model (tests exercise it on CPU).
    """
    import statistics

    import torch

    from sdxl_nb.backends.local.environment import peak_memory, reset_peak_memory
    from sdxl_nb.backends.local.speed import apply_options, fp8_problem
    from sdxl_nb.config.options import EngineOptions

    build_started = time.perf_counter()
    pipe = build_pipeline(architecture, device, torch.float16)
    result = into if into is not None else {}
    result.update({"architecture": architecture, "device": device, "size": f"{width}x{height}", "steps": steps,
                   "cfg": cfg, "batch": 1, "repeats": repeats, "build_s": time.perf_counter() - build_started,
                   "recipe": []})
    save = checkpoint or (lambda: None)
    cuda = device.startswith("cuda")
    if cuda:
        result["gpu"] = torch.cuda.get_device_name()
    if architecture == "full":
        result["unet_tflop_per_step"] = unet_tflop_per_step(width, height)
    reference = None  # the bf16 image the FP8 step is compared with
    for name in recipe:
        compile_s = None
        if name == "bf16 default":
            pipe.to(dtype=torch.bfloat16)
            reference = _image(pipe, width=width, height=height, steps=steps, cfg=cfg)
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
        elif name == "+ CUDA graphs":
            # The whole UNet compiled with CUDA graphs replaces the regional compile: a fresh pipeline with
            # every earlier step applied, since a regionally compiled UNet cannot be compiled whole again.
            del pipe
            if cuda:
                torch.cuda.empty_cache()
            pipe = build_pipeline(architecture, device, torch.float16)
            pipe.vae.register_to_config(force_upcast=False)
            # The engine's own option code, as the "Fastest (CUDA graphs)" profile runs it.
            apply_options(pipe, EngineOptions(channels_last=True, fuse_qkv=True, cuda_graphs=True), device)
        elif name == "+ FP8":
            problem = fp8_problem(device)
            if problem:  # not a failure of the recipe: this device has no float8 tensor cores
                result["recipe"].append({"step": name, "skipped": problem})
                on_line(f"  {name:24} skipped: {problem}")
                save()
                continue
            del pipe
            torch.cuda.empty_cache()
            # The "Fastest FP8 (Hopper)" profile's options through the engine's own code; bf16 around the
            # float8 matmuls, as torchao's dynamic float8 expects.
            pipe = build_pipeline(architecture, device, torch.bfloat16)
            pipe.vae.register_to_config(force_upcast=False)
            apply_options(pipe, EngineOptions(dtype="bfloat16", channels_last=True, fuse_qkv=True, cuda_graphs=True,
                                              fp8=True), device)
        reset_peak_memory(device)
        first_s, _ = _timed_run(pipe, width=width, height=height, steps=steps, cfg=cfg)  # warm-up (compiles here)
        runs = [_timed_run(pipe, width=width, height=height, steps=steps, cfg=cfg) for _ in range(repeats)]
        s_image = statistics.median(r[0] for r in runs)
        if name in ("+ torch.compile", "+ CUDA graphs", "+ FP8"):
            compile_s = max(first_s - s_image, 0.0)
        row = {"step": name, "s_per_image": s_image, "it_per_s": statistics.median(r[1] for r in runs),
               "peak_memory_bytes": peak_memory(device), "first_run_s": first_s, "compile_s": compile_s,
               "dtype": str(pipe.unet.dtype).removeprefix("torch.")}
        if name == "+ FP8" and reference is not None:
            row["psnr_vs_bf16_db"] = psnr_db(reference, _image(pipe, width=width, height=height, steps=steps, cfg=cfg))
        if cuda:
            row.update(unet_step_profile(pipe, width=width, height=height))
            if "unet_tflop_per_step" in result:
                row["unet_tflop_s"] = result["unet_tflop_per_step"] / (row["unet_gpu_ms"] / 1000)
        result["recipe"].append(row)
        save()
        on_line(f"  {name:24} {s_image:8.3f} s/image {row['it_per_s']:7.2f} it/s "
                f"{row['peak_memory_bytes'] / 2**30:6.2f} GiB" + (f"  compile {compile_s:.1f} s" if compile_s else "")
                + (f"  UNet call {row['unet_gpu_ms']:.1f} ms GPU / {row['unet_host_ms']:.1f} ms host" if cuda else ""))
    return result


def build_pipeline(architecture: str, device: str, dtype):
    """Random-weight SDXL: "full" (base 1.0 sizes) or "tiny" (the embedded model's architecture)."""
    if architecture == "full":
        from sdxl_nb.backends.local.full_size import build_full_size_pipeline

        return build_full_size_pipeline(device, dtype)
    from sdxl_nb.config.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe
