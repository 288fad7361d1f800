"""`sdxl-nb`: command-line verbs over the same library calls the panels use; one module per verb."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# Each module defines NAME, HELP, add_arguments(parser) and run(args) -> exit code; imported lazily
# so `--help` never pulls torch.
VERB_MODULES = [
    "sdxl_nb.cli.generate",
    "sdxl_nb.cli.listing_models",
    "sdxl_nb.cli.listing_loras",
    "sdxl_nb.cli.listing_upscalers",
    "sdxl_nb.cli.upscale",
    "sdxl_nb.cli.listing_ip_adapters",
    "sdxl_nb.cli.listing_controlnets",
    "sdxl_nb.cli.listing_presets",
    "sdxl_nb.cli.animate",
    "sdxl_nb.cli.sweep",
    "sdxl_nb.cli.bench",
    "sdxl_nb.cli.batch",
    "sdxl_nb.cli.comfy_export",
    "sdxl_nb.cli.convert",
    "sdxl_nb.cli.mirror",
    "sdxl_nb.cli.verifying",
    "sdxl_nb.cli.audit",
    "sdxl_nb.cli.score",
    "sdxl_nb.cli.export",
    "sdxl_nb.cli.code",
]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from sdxl_nb import __version__

    parser = Parser(prog="sdxl-nb", description="SDXL image lab: generate, list models and presets, audit jobs.")
    parser.add_argument("--version", action="version", version=f"sdxl-nb {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for module_name in VERB_MODULES:
        module = importlib.import_module(module_name)
        sub = verbs.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sdxl_nb import settings
    from sdxl_nb.errors import GenerationError, InputError, one_line
    from sdxl_nb.record.secrets import mask

    try:
        return args.handler(args)
    except InputError as exc:
        print(f"sdxl-nb {args.verb}: error: {mask(one_line(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except GenerationError as exc:
        print(f"sdxl-nb {args.verb}: failed: {mask(one_line(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `sdxl-nb models | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a job (recorded as interrupted either way)
        from sdxl_nb.errors import Terminated

        if isinstance(exc, Terminated):
            print(f"sdxl-nb {args.verb}: terminated (SIGTERM)", file=sys.stderr)
            return 128 + exc.signum
        print(f"sdxl-nb {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line; SDXL_NB_DEBUG=1 shows the traceback
        if settings.debug():
            raise
        print(f"sdxl-nb {args.verb}: failed: {type(exc).__name__}: {mask(one_line(exc))} (SDXL_NB_DEBUG=1 shows "
              "details)", file=sys.stderr)
        return EXIT_FAILED
