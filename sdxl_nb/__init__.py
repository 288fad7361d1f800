"""sdxl_nb: a Jupyter-native SDXL image lab; light re-exports only (never imports torch here)."""

__version__ = "0.1.0"

from sdxl_nb.errors import GenerationError, InputError, ModelUnavailableError, PresetError  # noqa: E402
from sdxl_nb.request.resolve import GenerationRequest  # noqa: E402


def generate(*args, **kwargs):
    """Run one generation job (see sdxl_nb.api.generate); imports the engine on first use."""
    from sdxl_nb.jobs.generate import generate as _generate

    return _generate(*args, **kwargs)


def lab(*args, **kwargs):
    """Show the whole lab in a notebook (see sdxl_nb.ui.lab); imports ipywidgets on first use."""
    from sdxl_nb.ui import lab as _lab

    return _lab(*args, **kwargs)


def code(*args, **kwargs):
    """A recorded job as a standalone diffusers script (see sdxl_nb.codegen.code); imports it on first use."""
    from sdxl_nb.codegen import code as _code

    return _code(*args, **kwargs)


def default_model() -> str:
    """The model used when none is named: `SDXL_NB_MODEL`, a cached real SDXL model, else tiny-sdxl."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import default_model_id

    return default_model_id(load_presets())


__all__ = ["GenerationError", "GenerationRequest", "InputError", "ModelUnavailableError", "PresetError",
           "__version__", "code", "default_model", "generate", "lab"]
