"""`sdxl-nb generate`: one job from the command line; prints saved paths or the record."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "generate"
HELP = "generate images and record the job in jobs.log"


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """Negative, model, scheduler, schedule type, style, steps, cfg and size: shared by generate, animate, sweep."""
    parser.add_argument("--negative", default="", help="what to avoid (the style's negative is appended)")
    parser.add_argument("--model", help="model id (see `sdxl-nb models`); default: a cached SDXL model, else tiny-sdxl")
    parser.add_argument("--scheduler", help="scheduler name (see `sdxl-nb presets`)")
    parser.add_argument("--schedule-type", metavar="TYPE",
                        help="A1111's schedule type for the sampler: Automatic (default), Uniform, Karras, Exponential, "
                             "SGM Uniform, Simple, Normal, DDIM, Beta (or ComfyUI's name: karras, sgm_uniform...)")
    parser.add_argument("--style", help="style preset name (see `sdxl-nb presets`)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", type=float, help="guidance scale")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--resolution", help="a resolution preset name such as 1024x1024")
    parser.add_argument("--lora", action="append", metavar="NAME:WEIGHT",
                        help="apply a LoRA at a weight (repeatable; see `sdxl-nb loras`); the same as "
                             "<lora:NAME:WEIGHT> in the prompt")


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The request options shared by every verb that builds a GenerationRequest."""
    parser.add_argument("--prompt", required=True, help="what to draw")
    add_setting_arguments(parser)
    parser.add_argument("--batch", type=int, default=1, help="images in this job (seeds seed, seed+1, ...)")
    parser.add_argument("--seed", type=int, help="base seed; random (and recorded) when omitted")
    parser.add_argument("--init-image", help="init image path: img2img (with --mask: inpaint)")
    parser.add_argument("--mask", help="inpaint mask path (white = repaint)")
    parser.add_argument("--strength", type=float, help="img2img/inpaint denoising strength, 0 < x <= 1")
    add_inpaint_arguments(parser)
    parser.add_argument("--refiner", metavar="MODEL",
                        help="a refiner model (see `sdxl-nb models`) that finishes the last steps, as in A1111")
    parser.add_argument("--refiner-switch", type=float, metavar="X",
                        help="fraction of the schedule the base runs before the refiner takes over, 0 < X <= 1 "
                             "(default 0.8; 1: the refiner does not run); with --hires-scale it applies in the hires pass")
    parser.add_argument("--refiner-switch-by", choices=("timestep", "steps"),
                        help="read the switch on the model's timesteps (default, as A1111) or as a fraction of the "
                             "sampling steps (A1111's 'Refiner switch by sampling steps')")
    parser.add_argument("--ip-adapter", metavar="NAME",
                        help="an IP-Adapter (see `sdxl-nb ip-adapters`): --ip-image pictures guide the look")
    parser.add_argument("--ip-image", action="append", metavar="PATH",
                        help="an image for the IP-Adapter (repeatable: their looks combine)")
    parser.add_argument("--ip-scale", type=float, metavar="W", help="IP-Adapter weight, 0 to 2 (default 1)")
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON instead of paths")


def add_inpaint_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inpaint (with --mask; A1111's settings and defaults)")
    group.add_argument("--mask-blur", type=int, metavar="PX", help="Gaussian blur of the mask, 0 to 64 (default 4)")
    group.add_argument("--masked-content", metavar="KIND",
                       help="what the masked area starts from: original (default), fill, latent noise, latent nothing")
    group.add_argument("--inpaint-area", metavar="AREA",
                       help="'Whole picture' (default) or 'Only masked' (a padded crop around the mask, inpainted "
                            "at the job's size and pasted back; local backend only)")
    group.add_argument("--only-masked-padding", type=int, metavar="PX",
                       help="pixels around the mask for 'Only masked', 0 to 256 (default 32)")


def add_hires_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hires fix (txt2img: a second, upscaled pass, as A1111's)")
    group.add_argument("--hires-scale", type=float, help="upscale the first pass by this factor (1 to 4), then denoise "
                                                         "again at the new size")
    group.add_argument("--hires-resize", metavar="WxH",
                       help="instead of --hires-scale: upscale to this size (A1111's Resize width/height to; a 0 "
                            "keeps the aspect ratio, e.g. 1536x0; another ratio is covered, then centre-cropped)")
    group.add_argument("--hires-steps", type=int, help="steps of the second pass (default: the first pass's steps)")
    group.add_argument("--hires-denoise", type=float, help="denoising strength of the second pass (default 0.7)")
    group.add_argument("--hires-upscaler", metavar="NAME",
                       help="Latent (default), Latent (bicubic), Latent (nearest-exact), Lanczos, or an upscaler "
                            "model's name (see `sdxl-nb upscalers`)")


def add_control_arguments(parser: argparse.ArgumentParser) -> None:
    """One ControlNet from the command line (several through the API and the lab)."""
    from sdxl_nb.request.control_maps import PREPROCESSORS

    group = parser.add_argument_group("ControlNet (one unit; see `sdxl-nb controlnets`)")
    group.add_argument("--controlnet", metavar="MODEL", help="guide the image with this ControlNet")
    group.add_argument("--control-image", metavar="PATH", help="the control image (made into a map by --control-type)")
    group.add_argument("--control-type", metavar="TYPE",
                       help=f"preprocessor: {', '.join(PREPROCESSORS)} (default none: the image is the map)")
    group.add_argument("--control-weight", type=float, help="ControlNet weight, 0 to 2 (default 1)")
    group.add_argument("--control-start", type=float, help="fraction of the steps where it starts (default 0)")
    group.add_argument("--control-end", type=float, help="fraction of the steps where it ends (default 1)")
    group.add_argument("--canny-low", type=int, help="canny low threshold, 1 to 255 (default 100)")
    group.add_argument("--canny-high", type=int, help="canny high threshold, 1 to 255 (default 200)")


def control_units(args) -> list | None:
    """The request's `controlnets` from the --control-* arguments; a stray one without --controlnet is refused."""
    from sdxl_nb.errors import InputError

    given = {"image": args.control_image, "preprocessor": args.control_type, "weight": args.control_weight,
             "start": args.control_start, "end": args.control_end, "low_threshold": args.canny_low,
             "high_threshold": args.canny_high}
    if args.controlnet is None:
        stray = [key for key, value in given.items() if value is not None]
        if stray:
            raise InputError(f"--control-* options need --controlnet MODEL (got {stray[0]} without it)")
        return None
    if args.control_image is None:
        raise InputError("--controlnet needs --control-image PATH")
    return [{"model": args.controlnet, **{key: value for key, value in given.items() if value is not None}}]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sdxl_nb.cli.backend_options import add_backend_arguments

    add_request_arguments(parser)
    add_control_arguments(parser)
    add_backend_arguments(parser)
    add_hires_arguments(parser)
    parser.add_argument("--chunk-size", type=int, help="images per pipeline call (default: the whole batch)")
    parser.add_argument("--auto-tune", action="store_true", default=None,
                        help="on out of memory, retry with fewer images at once, then VAE slicing/tiling, then "
                             "CPU offload (default: $SDXL_NB_AUTO_TUNE)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and print what would run and its warnings; generate nothing")


def request_from(args):
    from sdxl_nb.request.resolve import GenerationRequest

    return GenerationRequest(
        prompt=args.prompt, negative_prompt=args.negative, model=args.model, scheduler=args.scheduler,
        schedule_type=args.schedule_type, style=args.style, steps=args.steps, cfg=args.cfg, width=args.width, height=args.height,
        resolution=args.resolution, batch=args.batch, seed=args.seed, init_image=args.init_image,
        mask_image=args.mask, strength=args.strength, loras=args.lora,
        refiner=args.refiner, refiner_switch=args.refiner_switch,
        refiner_switch_by=getattr(args, "refiner_switch_by", None),
        hires_scale=getattr(args, "hires_scale", None), hires_steps=getattr(args, "hires_steps", None),
        hires_denoise=getattr(args, "hires_denoise", None), hires_upscaler=getattr(args, "hires_upscaler", None),
        hires_resize=getattr(args, "hires_resize", None),
        ip_adapter=getattr(args, "ip_adapter", None), ip_images=getattr(args, "ip_image", None),
        ip_scale=getattr(args, "ip_scale", None),
        controlnets=control_units(args) if hasattr(args, "controlnet") else None,
        **{name: getattr(args, name, None) for name in ("mask_blur", "masked_content", "inpaint_area",
                                                        "only_masked_padding")},
    )


def print_warnings(warnings, shown=()) -> None:
    for warning in warnings:
        if warning not in shown:
            print(f"warning: {warning}", file=sys.stderr)


def print_result(result, as_json: bool, shown=(), show_error: bool = True) -> int:
    """Paths (or the record) on stdout, warnings not yet shown on stderr; the exit code for its status."""
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK

    if as_json:
        print(json.dumps(result.record, ensure_ascii=False))
    else:
        print_warnings(result.record["warnings"], shown)
        for path in result.paths:
            print(path)
    if show_error and result.record.get("error"):
        print(f"error: {result.record['error']}", file=sys.stderr)
    if getattr(result, "mirror_error", None):
        print(f"warning: {result.mirror_error}", file=sys.stderr)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def print_preflight(check, as_json: bool) -> int:
    from dataclasses import asdict

    from sdxl_nb.cli import EXIT_OK

    r = check.resolved
    if as_json:
        print(json.dumps({"request": asdict(r), "warnings": check.warnings}, ensure_ascii=False, default=str))
        return EXIT_OK
    print_warnings(check.warnings)
    schedule = "" if r.schedule_type == "Automatic" else f" ({r.schedule_type})"
    print(f"would run {r.mode} with {r.model.id}, {r.scheduler.name}{schedule}, {r.steps} steps, cfg {r.cfg:g}, "
          f"{r.width}x{r.height}, seeds {', '.join(map(str, r.seeds))}"
          + (f", refiner {r.refiner.id} from switch {r.refiner_switch:g}"
             + (" (by sampling steps)" if r.refiner_switch_by == "steps" else "")
             + (" of the hires pass" if r.hires else "") if r.refiner else ""))
    if r.hires:
        h = r.hires
        print(f"then hires fix: {h.upscaler.name} x{h.scale:g} to {h.width}x{h.height}, {h.steps} steps at "
              f"denoise {h.denoise:g}")
    print(f"prompt: {r.styled_prompt}")
    if r.effective_negative_prompt:
        print(f"negative: {r.effective_negative_prompt}")
    if getattr(r, "ip_adapter", None) is not None:
        ip = r.ip_adapter
        print(f"IP-Adapter: {ip.name} at scale {ip.scale:g} with {len(ip.images)} image(s) "
              f"(encoder {ip.encoder_path})")
    for index, unit in enumerate(getattr(r, "controlnets", ())):
        print(f"ControlNet {index}: {unit.model} [{unit.short_hash}], {unit.preprocessor} map of {unit.image_path}, "
              f"weight {unit.weight:g}, steps {unit.start:g} to {unit.end:g}")
    return EXIT_OK


def run(args) -> int:
    from sdxl_nb.cli.backend_options import backend_choice
    from sdxl_nb.errors import GenerationError
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.request.preflight import preflight

    request = request_from(args)
    if args.dry_run:
        return print_preflight(preflight(request), args.json)

    def progress(p: dict) -> None:
        if sys.stderr.isatty():
            print(f"\rstep {p['step']}/{p['total']} (chunk {p['chunk']}/{p['chunks']})", end="", file=sys.stderr)

    shown: list[str] = []

    def warn(warning: str) -> None:  # before the run starts
        shown.append(warning)
        print(f"warning: {warning}", file=sys.stderr)

    backend = backend_choice(args)
    try:
        result = generate(request, engine=backend, auto_tune=args.auto_tune, out_dir=args.out, on_progress=progress,
                          on_warning=warn, chunk_size=args.chunk_size)
    except GenerationError as exc:
        if getattr(exc, "result", None) is not None:  # images saved before the failure are still listed
            print_result(exc.result, args.json, shown, show_error=False)  # the error line comes from main()
        raise
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
    return print_result(result, args.json, shown)
