"""`sdxl-nb animate`: a seed walk, slerp or prompt travel; prints the frames, grid and animations (or the record)."""

from __future__ import annotations

import argparse
import json
import sys

NAME = "animate"
HELP = "make an animation (frames, frame grid, GIF, WebP) and record it as one job"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sdxl_nb.cli.backend_options import add_backend_arguments
    from sdxl_nb.cli.generate import add_setting_arguments
    from sdxl_nb.jobs.animate.plan import MAX_FPS, MODES, SCHEDULES

    parser.add_argument("--prompt", required=True, help="what to draw (the start prompt of a prompt travel)")
    parser.add_argument("--prompt-end", help="prompt travel: the prompt the conditioning travels to")
    parser.add_argument("--mode", default="seed-walk", choices=MODES,
                        help="seed-walk: seed+i and a motion phrase per frame; slerp: noise from --seed to "
                             "--seed-end; prompt-travel: conditioning from --prompt to --prompt-end")
    parser.add_argument("--frames", type=int, default=8, help="number of frames (at least 2)")
    parser.add_argument("--seed", type=int, help="base (or start) seed; random and recorded when omitted")
    parser.add_argument("--seed-end", type=int, help="slerp: the seed the noise travels to")
    parser.add_argument("--variation", type=float, help="seed-walk: 0..1, how many motion phrases per frame")
    parser.add_argument("--schedule", default="linear", choices=SCHEDULES, help="interpolation spacing of t")
    parser.add_argument("--fps", type=float, default=8.0, help=f"animation speed, 0 < fps <= {MAX_FPS:g}")
    parser.add_argument("--ping-pong", action="store_true", help="play forward then back (a seamless loop)")
    parser.add_argument("--batch-size", type=int, help="frames per pipeline call (default: as many as fit)")
    add_setting_arguments(parser)
    parser.add_argument("--init-image", help="init image path: every frame is img2img from it")
    parser.add_argument("--strength", type=float, help="img2img denoising strength, 0 < x <= 1")
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--json", action="store_true", help="print the job record as JSON instead of paths")
    add_backend_arguments(parser)


def request_from(args):
    from sdxl_nb.jobs.animate import AnimationRequest

    return AnimationRequest(
        prompt=args.prompt, prompt_end=args.prompt_end, mode=args.mode, frames=args.frames, seed=args.seed,
        seed_end=args.seed_end, variation=args.variation, schedule=args.schedule, fps=args.fps,
        ping_pong=args.ping_pong, batch_size=args.batch_size, negative_prompt=args.negative, model=args.model,
        scheduler=args.scheduler, schedule_type=args.schedule_type, style=args.style, steps=args.steps, cfg=args.cfg, width=args.width,
        height=args.height, resolution=args.resolution, init_image=args.init_image, strength=args.strength,
        loras=args.lora)


def run(args) -> int:
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK
    from sdxl_nb.cli.backend_options import backend_choice
    from sdxl_nb.jobs.animate import animate, prepare_animation

    request = request_from(args)
    prepare_animation(request)  # bad input is one line before a backend is even contacted

    def progress(p: dict) -> None:
        if sys.stderr.isatty():
            print(f"\rframes {p['images_done']}/{p['batch']}, step {p['step']}/{p['total']}", end="",
                  file=sys.stderr)

    result = animate(request, engine=backend_choice(args), out_dir=args.out, on_progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(result.record, ensure_ascii=False))
    else:
        for warning in result.record["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        extra = [result.grid_path, *result.animation_paths.values()]
        for path in [*result.paths, *[p for p in extra if p is not None]]:
            print(path)
    return EXIT_OK if result.status == "ok" else EXIT_FAILED
