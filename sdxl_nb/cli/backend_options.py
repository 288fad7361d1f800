"""Where a CLI job runs: --backend local|comfy (--comfy-url...), --replicas DEVICES; shared by every job verb."""

from __future__ import annotations

import argparse


def add_comfy_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("ComfyUI server")
    group.add_argument("--comfy-checkpoint", help="checkpoint file on the server (default: <model repo name>.safetensors)")
    group.add_argument("--comfy-vae", help="VAE file on the server (default: the model's dedicated VAE if the server "
                                           "has it; \"\" for the checkpoint's own)")
    group.add_argument("--comfy-refiner-checkpoint", metavar="FILE",
                       help="the refiner's checkpoint file on the server (default: <refiner repo name>.safetensors)")


def add_backend_arguments(parser: argparse.ArgumentParser, *, backends=("local", "comfy")) -> None:
    parser.add_argument("--backend", choices=backends, default="local",
                        help="where images are made: this machine (default) or a ComfyUI server")
    parser.add_argument("--comfy-url", help="ComfyUI server, e.g. http://127.0.0.1:8188 (default: $SDXL_NB_COMFY_URL)")
    add_comfy_arguments(parser)
    parser.add_argument("--replicas", metavar="DEVICES",
                        help="local backend: one model copy per device, the batch split across them "
                             "(e.g. cuda:0,cuda:1 or all)")
    parser.add_argument("--engine-profile", metavar="NAME",
                        help="local backend: engine options from a presets profile, e.g. \"Fast (CUDA)\" "
                             "(see `sdxl-nb presets`; default: the presets' default profile)")


def check_backend_arguments(args) -> None:
    """Options that do not fit the chosen backend are bad input (exit 2), not silently ignored."""
    from sdxl_nb.errors import InputError

    if args.backend != "comfy" and args.comfy_url:
        raise InputError("--comfy-url needs --backend comfy")
    if args.backend != "local" and args.replicas:
        raise InputError("--replicas applies to the local backend only")
    if args.backend != "local" and args.engine_profile:
        raise InputError("--engine-profile applies to the local backend only")
    if args.backend == "local" and (args.comfy_checkpoint or args.comfy_vae is not None
                                    or getattr(args, "comfy_refiner_checkpoint", None)):
        raise InputError("--comfy-checkpoint/--comfy-vae/--comfy-refiner-checkpoint need --backend comfy")
    if args.backend != "local" and getattr(args, "chunk_size", None) not in (None, 1):
        raise InputError(f"--chunk-size {args.chunk_size}: a ComfyUI backend runs one image per prompt (so that "
                         "image i keeps seed + i); accepted there: 1")


def comfy_backend(args):
    from sdxl_nb.backends.comfy.backend import ComfyBackend

    return ComfyBackend(args.comfy_url, checkpoint=args.comfy_checkpoint, vae=args.comfy_vae,
                        refiner_checkpoint=args.comfy_refiner_checkpoint)


def backend_choice(args):
    """The backend the options name: a ComfyUI server, replicas, or None for the kernel's engine (configured
    with --engine-profile). Every job verb passes it on as `engine=`."""
    check_backend_arguments(args)
    if args.backend == "comfy":
        return comfy_backend(args)
    from sdxl_nb.config.engine_profiles import engine_options

    options = engine_options(args.engine_profile)  # an unknown profile is bad input before anything loads
    if args.replicas:
        from sdxl_nb.backends.replicas import ReplicaEngine, parse_devices

        return ReplicaEngine(parse_devices(args.replicas), options=options)
    if args.engine_profile:
        from sdxl_nb.backends.local import get_engine

        get_engine().configure(options)
    return None
