"""LoRA and embedding listings for the CLI, the API and the lab: name, size, hashes and whether each fits a model."""

from __future__ import annotations

from sdxl_nb.config.embeddings import check_embedding, embedding_clashes, list_embeddings, name_problem
from sdxl_nb.config.loras import LoraUse, list_loras, lora_clashes
from sdxl_nb.config.name_clash import clash_warning
from sdxl_nb.config.safetensors_file import header_problem
from sdxl_nb.errors import InputError


def lora_listing(model: str | None = None, *, fits: bool = True, backend=None, hashes: bool = True,
                 demo: bool = True) -> list[dict]:
    """Every LoRA: {name, path, size_bytes, sha256, short_hash (A1111's), source, fits, usable, problem, clash}.

    With `fits`, each file is checked layer by layer against `model` (default: the default model) on the
    backend (default: the kernel's; the model need not be loaded). Imports torch only for that check. A file
    that cannot be read (a malformed header) is listed as unusable with its reason; the others are unaffected.
    Without `hashes` the files are not read whole (sha256 and short_hash stay None: a quick listing); without
    `demo` the embedded demo LoRA is left out (it is built on first use).
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
    table = lora_clashes()
    rows = []
    for lora in list_loras(demo=demo):
        clash = clash_warning("LoRA", lora.name, table)
        row = {"name": lora.name, "path": lora.path, "size_bytes": lora.size_bytes, "source": lora.source,
               "sha256": None, "short_hash": None, "model": info.id if info else None, "fits": None, "usable": True,
               "problem": None, "clash": clash[0] if clash else None}
        try:
            problem = header_problem(lora.path)
            if problem:
                raise InputError(problem)
            if hashes:
                row.update(sha256=lora.sha256, short_hash=lora.short_hash)
        except (InputError, OSError) as exc:  # a truncated, malformed or unreadable file is listed with its reason
            row.update(fits=False, usable=False, problem=str(exc))
            rows.append(row)
            continue
        try:
            if info is not None and backend.capabilities.lora and backend.capabilities.local_models:
                problem = backend.lora_problem(info, LoraUse(lora.name, lora.path, row["sha256"] or lora.sha256, 1.0))
                row.update(fits=problem is None, problem=problem)
        except InputError as exc:
            row.update(fits=False, problem=str(exc))
        rows.append(row)
    return rows


def embedding_listing() -> list[dict]:
    """Every textual-inversion embedding: {name, path, size_bytes, vectors, usable, problem, clash}; a malformed
    file, or one named like a common prompt word, is listed as unusable with its reason."""
    table = embedding_clashes()
    rows = []
    for embedding in list_embeddings():
        clash = clash_warning("embedding", embedding.name, table)
        row = {"name": embedding.name, "path": embedding.path, "size_bytes": embedding.size_bytes, "vectors": None,
               "usable": True, "problem": name_problem(embedding.name), "clash": clash[0] if clash else None}
        try:
            if row["problem"] is None:
                row["vectors"] = check_embedding(embedding.path)
        except (InputError, OSError) as exc:
            row["problem"] = str(exc)
        row["usable"] = row["problem"] is None
        rows.append(row)
    return rows
