"""Error types: user-caused problems (one clear line, exit 2) versus runtime failures (exit 1)."""


class InputError(ValueError):
    """Bad input: the message is one line naming what was wrong and what is accepted."""


class PresetError(InputError):
    """presets.json (or a user presets file) is invalid."""


class ModelUnavailableError(InputError):
    """A model is not in the local cache, or its snapshot is incomplete."""


class Terminated(KeyboardInterrupt):
    """The process was asked to end (SIGTERM) during a job: handled like Ctrl-C (sdxl_nb.jobs.signals)."""

    def __init__(self, signum: int = 15):
        super().__init__(f"signal {signum}")
        self.signum = signum


class GenerationError(RuntimeError):
    """Generation failed at run time (out of memory, a library error...)."""


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (stripped), else its type's name.

    Messages are one line by design; a library's multi-line message (diffusers' ImportErrors start with a
    newline) keeps its first line with text, so a failure is never recorded or printed as an empty string.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
