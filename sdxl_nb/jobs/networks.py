"""LoRA and embedding listings for the CLI, the API and the lab: name, size, hashes and whether each fits a model."""

from __future__ import annotations

from sdxl_nb.config.embeddings import check_embedding, list_embeddings
from sdxl_nb.config.loras import LoraUse, list_loras
from sdxl_nb.errors import InputError


def lora_listing(model: str | None = None, *, fits: bool = True, backend=None) -> list[dict]:
    """Every LoRA: {name, path, size_bytes, sha256, short_hash (A1111's), source, fits, problem}.

    With `fits`, each file is checked layer by layer against `model` (default: the default model) on the
    backend (default: the kernel's; the model need not be loaded). Imports torch only for that check.
    """
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import default_model_id, find_model

    info = None
    if fits:
        presets = load_presets()
        info = find_model(model or default_model_id(presets), presets)
        if backend is None:
            from sdxl_nb.jobs.pipeline import kernel_backend

            backend = kernel_backend()
    rows = []
    for lora in list_loras():
        row = {"name": lora.name, "path": lora.path, "size_bytes": lora.size_bytes, "source": lora.source,
               "sha256": None, "short_hash": None, "model": info.id if info else None, "fits": None, "problem": None}
        try:
            row.update(sha256=lora.sha256, short_hash=lora.short_hash)
            if info is not None and backend.capabilities.lora and backend.capabilities.local_models:
                problem = backend.lora_problem(info, LoraUse(lora.name, lora.path, row["sha256"], 1.0))
                row.update(fits=problem is None, problem=problem)
        except InputError as exc:  # a truncated or unreadable file is listed with its reason
            row.update(fits=False, problem=str(exc))
        rows.append(row)
    return rows


def embedding_listing() -> list[dict]:
    """Every textual-inversion embedding: {name, path, size_bytes, vectors, problem}."""
    rows = []
    for embedding in list_embeddings():
        row = {"name": embedding.name, "path": embedding.path, "size_bytes": embedding.size_bytes, "vectors": None,
               "problem": None}
        try:
            row["vectors"] = check_embedding(embedding.path)
        except InputError as exc:
            row["problem"] = str(exc)
        rows.append(row)
    return rows
