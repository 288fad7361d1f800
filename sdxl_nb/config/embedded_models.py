"""The embedded models (built locally, no download): id -> the folder it is built in, and its revision."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.errors import ModelUnavailableError


def _builders() -> dict:
    from sdxl_nb.config.tiny import TINY_MODEL_ID, ensure_tiny_model
    from sdxl_nb.config.tiny_inpaint import TINY_INPAINT_ID, ensure_tiny_inpaint
    from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID, ensure_tiny_refiner

    return {TINY_MODEL_ID: ensure_tiny_model, TINY_INPAINT_ID: ensure_tiny_inpaint, TINY_REFINER_ID: ensure_tiny_refiner}


def embedded_folder(model_id: str) -> Path:
    """The folder of an embedded model (built on first use); an unknown id is one line naming the accepted ones."""
    builders = _builders()
    if model_id not in builders:
        raise ModelUnavailableError(f"no embedded model {model_id!r}; accepted: {', '.join(builders)}")
    return builders[model_id]()


def embedded_revision(model_id: str) -> str:
    """An embedded model's revision: its saved folder's content hash."""
    from sdxl_nb.config.tiny import content_revision

    return content_revision(embedded_folder(model_id))
