"""Applies EngineOptions to a loaded pipeline (layout, fusion, regional compile, memory savers) and warms it up."""

from __future__ import annotations

import time

import torch

from sdxl_nb.config.options import EngineOptions

FP8_MIN_CAPABILITY = (8, 9)  # Ada (8.9) and Hopper (9.0) are the first with float8 tensor cores


def fp8_problem(device: str) -> str | None:
    """Why the fp8 option cannot run on this device (None when it can); checked before anything loads."""
    if not device.startswith("cuda"):
        return (f"the fp8 engine option needs an NVIDIA GPU with float8 tensor cores (Ada or Hopper); this engine "
                f"runs on {device}")
    capability = torch.cuda.get_device_capability(torch.device(device))
    if capability < FP8_MIN_CAPABILITY:
        return (f"the fp8 engine option needs compute capability 8.9 or newer (Ada, Hopper); "
                f"{torch.cuda.get_device_name(torch.device(device))} has {capability[0]}.{capability[1]}")
    try:
        import torchao.quantization  # noqa: F401
    except ImportError:
        return "the fp8 engine option needs torchao (pip install torchao), which is not installed"
    return None


def quantize_fp8(unet) -> None:
    """Dynamic float8 for the UNet's linear layers (weights quantized once, activations per call), in place."""
    from torchao import quantization

    # The config class replaced the factory function in torchao 0.10; older releases only have the function.
    config = getattr(quantization, "Float8DynamicActivationFloat8WeightConfig", None)
    quantization.quantize_(unet, config() if config else quantization.float8_dynamic_activation_float8_weight())


def apply_options(pipe, options: EngineOptions, device: str) -> list[str]:
    """Apply options in place; return one event line per change (or per option that could not apply)."""
    events = []
    cuda = device.startswith("cuda")
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        events.append("UNet in channels-last memory format")
    if options.fuse_qkv:
        pipe.fuse_qkv_projections()
        events.append("fused QKV projections (UNet and VAE attention)")
    if options.fp8:  # before any compile: the compiled graph must see the float8 layers
        quantize_fp8(pipe.unet)
        events.append("UNet linear layers in float8 (torchao dynamic float8)")
    if options.compile:
        # Regional compilation: the repeated transformer block is compiled once and reused, so
        # compile time stays in seconds instead of minutes; compilation itself runs at the first call.
        pipe.unet.compile_repeated_blocks(fullgraph=True)
        events.append("torch.compile of the UNet's repeated blocks (compiles at the first run)")
    if options.cuda_graphs:
        if cuda:
            compile_with_cuda_graphs(pipe.unet)
            events.append("torch.compile of the whole UNet with CUDA graphs (compiles at the first run per size)")
        else:
            events.append(f"CUDA graphs not applied: the engine runs on {device}")
    set_vae_savers(pipe, options)
    if options.vae_slicing:
        events.append("VAE slicing on")
    if options.vae_tiling:
        events.append("VAE tiling on")
    if options.cpu_offload:
        if cuda:
            pipe.enable_model_cpu_offload(device=device)
            events.append("model CPU offload on")
        else:
            events.append(f"model CPU offload not applied: the engine already runs on {device}")
    return events


def compile_with_cuda_graphs(unet) -> None:
    """Whole-UNet compile, mode reduce-overhead: each call replays one CUDA graph instead of queueing ~2,000
    kernels from Python. Compiled in place (`Module.compile`), so the pipeline keeps its UNet object."""
    # Static shapes: a new image size compiles again like the first (~100 s for SDXL on an H100). Left to
    # torch's automatic dynamic shapes, the second size started a symbolic-shape compile that ran past
    # four minutes there, and its kernels would be slower for every size.
    unet.compile(mode="reduce-overhead", fullgraph=True, dynamic=False)


def set_vae_savers(pipe, options: EngineOptions) -> None:
    """VAE slicing/tiling can be toggled in place on a loaded pipeline."""
    pipe.vae.enable_slicing() if options.vae_slicing else pipe.vae.disable_slicing()
    pipe.vae.enable_tiling() if options.vae_tiling else pipe.vae.disable_tiling()


def warm_up(pipe, width: int, height: int, steps: int = 2, call=None) -> float:
    """One small run at the size jobs will use, so compilation and kernel selection happen now; seconds taken.

    `call(pipe, **kwargs)` runs the pipeline (the engine's, which keeps graph-compiled models on one thread).
    """
    started = time.perf_counter()
    run = call or (lambda p, **kwargs: p(**kwargs))
    run(pipe, prompt="warm-up", num_inference_steps=steps, width=width, height=height, guidance_scale=5.0,
        generator=[torch.Generator("cpu").manual_seed(0)], output_type="pil")
    if torch.cuda.is_available() and str(pipe.device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started
