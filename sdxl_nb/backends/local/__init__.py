"""The engine package: the only place that imports torch/diffusers (pure modules never import it)."""

from sdxl_nb.backends.local import loading  # noqa: F401  (first: it quiets transformers before diffusers loads)
from sdxl_nb.backends.local.core import Engine, LoadedModel, RunOutput, get_engine, set_engine

__all__ = ["Engine", "LoadedModel", "RunOutput", "get_engine", "set_engine"]
