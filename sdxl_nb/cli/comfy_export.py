"""`sdxl-nb comfy-export`: a request as an API-format ComfyUI workflow (JSON), to a file or stdout."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

NAME = "comfy-export"
HELP = "write a request as a ComfyUI API-format workflow (POST /prompt body's \"prompt\")"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sdxl_nb.cli.backend_options import add_comfy_arguments
    from sdxl_nb.cli.generate import add_control_arguments, add_hires_arguments, add_request_arguments

    add_request_arguments(parser)
    add_hires_arguments(parser)
    add_control_arguments(parser)
    add_comfy_arguments(parser)
    parser.add_argument("-o", "--output", help="workflow file to write (default: stdout)")


def _write_whole(path: str, text: str) -> None:
    """Replace the file in one step: never a half-written workflow."""
    folder = os.path.dirname(os.path.abspath(path))
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=".sdxl_nb-tmp-", delete=False)
    try:
        with handle:
            handle.write(text)
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise


def run(args) -> int:
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.cli import EXIT_OK
    from sdxl_nb.cli.generate import request_from
    from sdxl_nb.errors import InputError
    from sdxl_nb.record.secrets import mask
    from sdxl_nb.request.prepare import prepare

    if args.out or args.json:
        raise InputError("--out/--json do not apply to comfy-export (use -o FILE)")
    if args.output:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise InputError(f"cannot write {args.output!r}: folder {folder!r} does not exist or is not writable")
    resolved = prepare(request_from(args))
    workflow = build_workflow(resolved, checkpoint=args.comfy_checkpoint, vae=args.comfy_vae,
                              refiner_checkpoint=args.comfy_refiner_checkpoint)
    text = workflow.export_text()
    notes = [*resolved.notes, *workflow.notes]
    notes += [f"the workflow loads {name}: put {path} in ComfyUI's input folder" for path, name in workflow.uploads.items()]
    if resolved.controlnets:
        from sdxl_nb.backends.comfy.control_nodes import placement_note

        notes += [placement_note(unit) for unit in resolved.controlnets]
    for note in notes:
        print(f"note: {mask(note)}", file=sys.stderr)
    if args.output:
        _write_whole(args.output, text)
        print(args.output)
    else:
        sys.stdout.write(text)
    return EXIT_OK
