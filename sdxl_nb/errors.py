"""Error types: user-caused problems (one clear line, exit 2) versus runtime failures (exit 1)."""


class InputError(ValueError):
    """Bad input: the message is one line naming what was wrong and what is accepted."""


class PresetError(InputError):
    """presets.json (or a user presets file) is invalid."""


class ModelUnavailableError(InputError):
    """A model is not in the local cache, or its snapshot is incomplete."""


class GenerationError(RuntimeError):
    """Generation failed at run time (out of memory, a library error...)."""
