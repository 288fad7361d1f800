"""`sdxl-nb batch SCENARIOS.json`: one job per scenario, resumable; under `accelerate launch`, split across processes."""

from __future__ import annotations

import argparse
import json
import os
import sys

NAME = "batch"
HELP = "run a JSON list of scenarios (resumable; several processes under accelerate launch)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sdxl_nb.cli.backend_options import add_backend_arguments

    parser.add_argument("scenarios", help='JSON list of {"name", "prompt", "negative"?, "seed"?, ...request fields}')
    parser.add_argument("--out", help="output folder (default: $SDXL_NB_OUTPUT or output_images)")
    parser.add_argument("--batch-id", help="name recorded with each job and used to resume (default: file name stem)")
    parser.add_argument("--chunk-size", type=int, help="images per pipeline call (default: the whole batch)")
    parser.add_argument("--dry-run", action="store_true", help="list what would run and what is done; run nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_backend_arguments(parser, backends=("local", "comfy", "lambda"))
    cloud = parser.add_argument_group("Lambda Cloud (--backend lambda: launch a GPU, run on its ComfyUI, terminate)")
    cloud.add_argument("--lambda-instance-type", help="e.g. gpu_1x_a10")
    cloud.add_argument("--lambda-region", help="e.g. us-east-1")
    cloud.add_argument("--lambda-ssh-key", action="append", default=[], help="SSH key name (repeatable)")
    cloud.add_argument("--lambda-comfy-url", default="http://{ip}:8188",
                       help="where the instance's ComfyUI answers; {ip} is filled in (default: %(default)s)")


def _processes():
    """The accelerate processes when launched by `accelerate launch`/torchrun with more than one; else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from sdxl_nb.backends.local.placement import Processes

    return Processes()


def _say(text: str, rank_prefix: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"{rank_prefix}{text}", file=sys.stderr)


def run(args) -> int:
    from sdxl_nb.cli import EXIT_OK
    from sdxl_nb.errors import InputError
    from sdxl_nb.jobs.batch import check_scenarios, load_scenarios, plan_batch

    if args.chunk_size is not None and args.chunk_size < 1:
        raise InputError(f"--chunk-size {args.chunk_size} is out of range; accepted: 1 or more")
    scenarios = load_scenarios(args.scenarios)
    batch_id = args.batch_id or os.path.splitext(os.path.basename(args.scenarios))[0]
    if args.dry_run:
        from sdxl_nb.jobs.pipeline import default_output_dir

        check_scenarios(scenarios, local_models=args.backend == "local")
        pending, done = plan_batch(scenarios, args.out or default_output_dir(), batch_id)
        for scenario in scenarios:
            print(f"{'done' if scenario in done else 'to run'}\t{scenario.name}")
        print(f"batch {batch_id}: {len(pending)} to run, {len(done)} done", file=sys.stderr)
        return EXIT_OK

    if args.backend == "lambda":
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InputError("--backend lambda launches one instance: run it without accelerate launch")
        return _run_on_lambda(args, scenarios, batch_id)
    if args.lambda_instance_type or args.lambda_region or args.lambda_ssh_key:
        raise InputError("--lambda-* options need --backend lambda")
    from sdxl_nb.cli.backend_options import backend_choice

    backend = backend_choice(args)
    processes = _processes()  # a ComfyUI backend is shared too: each process sends its own share
    return _run(args, scenarios, batch_id, engine=backend, processes=processes)


def _run(args, scenarios, batch_id, *, engine=None, processes=None) -> int:
    from sdxl_nb.cli import EXIT_FAILED, EXIT_OK
    from sdxl_nb.jobs.batch import run_batch

    prefix = ""
    if processes is not None:
        placement = processes.placement
        prefix = f"[rank {placement.rank}/{placement.world_size} {placement.device}] "
    bar = None
    if sys.stderr.isatty() and processes is None:
        from tqdm import tqdm

        bar = tqdm(total=len(scenarios), unit="scenario", file=sys.stderr)

    def on_scenario(outcome, number, total):
        detail = f": {outcome.error}" if outcome.error else f" ({len(outcome.paths)} image(s), {outcome.seconds:.1f} s)"
        _say(f"[{number}/{total}] {outcome.status} {outcome.name}{detail}", prefix)
        if bar is not None:
            bar.update(1)

    try:
        summary = run_batch(scenarios, batch_id=batch_id, out_dir=args.out, engine=engine,
                            on_scenario=on_scenario, chunk_size=args.chunk_size, processes=processes)
    finally:
        if bar is not None:
            bar.close()
    if processes is None or processes.is_main:
        if args.json:
            print(json.dumps({"batch_id": summary.batch_id, "seconds": summary.seconds,
                              "outcomes": [vars(o) for o in summary.outcomes]}, ensure_ascii=False))
        else:
            for line in summary.lines():
                print(line)
    return EXIT_OK if summary.ok else EXIT_FAILED


def _run_on_lambda(args, scenarios, batch_id) -> int:
    from sdxl_nb.cloud.lambda_cloud import comfy_on_lambda
    from sdxl_nb.errors import InputError

    missing = [flag for flag, value in (("--lambda-instance-type", args.lambda_instance_type),
                                        ("--lambda-region", args.lambda_region),
                                        ("--lambda-ssh-key", args.lambda_ssh_key)) if not value]
    if missing:
        raise InputError(f"--backend lambda needs {', '.join(missing)}")
    if args.replicas or args.comfy_url:
        raise InputError("--backend lambda finds its ComfyUI itself: drop --replicas/--comfy-url")
    with comfy_on_lambda(args.lambda_instance_type, args.lambda_region, args.lambda_ssh_key,
                         comfy_url=args.lambda_comfy_url, checkpoint=args.comfy_checkpoint, vae=args.comfy_vae,
                         refiner_checkpoint=args.comfy_refiner_checkpoint,
                         on_stage=lambda text: _say(text, "lambda: ")) as backend:
        return _run(args, scenarios, batch_id, engine=backend)
