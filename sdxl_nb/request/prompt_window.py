"""CLIP's token window: warns (never silently) when the tail of a prompt would be cut off."""

from __future__ import annotations

import os
from pathlib import Path


def window_warnings(tokenizer, *texts: tuple[str, str]) -> list[str]:
    """One warning per (name, text) longer than the tokenizer's window, quoting where the cut falls."""
    warnings = []
    limit = tokenizer.model_max_length
    for name, text in texts:
        if not text:
            continue
        ids = tokenizer(text, truncation=False).input_ids
        if len(ids) > limit:
            kept = tokenizer.decode(ids[1:limit - 1])
            warnings.append(f"{name} is {len(ids) - 2} tokens; CLIP reads {limit - 2}: everything after "
                            f"{kept[-40:]!r} is ignored")
    return warnings


def load_tokenizer(model_folder: str | os.PathLike):
    """The first tokenizer of a diffusers SDXL folder (a few MB read; no torch)."""
    import transformers
    from transformers import CLIPTokenizer

    # Its "sequence longer than the maximum" notice would duplicate our warning, unformatted.
    transformers.utils.logging.set_verbosity_error()
    return CLIPTokenizer.from_pretrained(Path(model_folder) / "tokenizer", local_files_only=True)
