"""Error types: user-caused problems (one clear line, exit 2) versus runtime failures (exit 1)."""


class InputError(ValueError):
    """Bad input: the message is one line naming what was wrong and what is accepted."""


class PresetError(InputError):
    """presets.json (or a user presets file) is invalid."""


class ModelUnavailableError(InputError):
    """A model is not in the local cache, or its snapshot is incomplete."""


class GenerationError(RuntimeError):
    """Generation failed at run time (out of memory, a library error...)."""


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (some start with a newline), else its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
