"""A request's LoRAs (prompt tags, --lora, loras=) and embeddings, validated and resolved to files; no torch."""

from __future__ import annotations

import math

from sdxl_nb.config.embeddings import EmbeddingUse, embeddings_for
from sdxl_nb.config.loras import LoraUse, lora_use
from sdxl_nb.errors import InputError
from sdxl_nb.request.prompt_syntax import lora_tags

ACCEPTED = "a list of (NAME, WEIGHT) pairs or 'NAME:WEIGHT' texts, e.g. [('tiny-sdxl-lora', 0.8)]"


def parse_lora_text(text: str) -> tuple[str, float]:
    """'NAME:WEIGHT' or 'NAME' (weight 1) -> (name, weight), as --lora takes it."""
    name, sep, weight = text.rpartition(":") if ":" in text else (text, "", "1")
    name = name.strip()
    try:
        value = float(weight)
    except ValueError:
        raise InputError(f"LoRA {text!r}: weight {weight!r} is not a number; accepted: NAME:WEIGHT") from None
    if not name:
        raise InputError(f"LoRA {text!r} has no name; accepted: NAME:WEIGHT")
    return name, value


def check_lora_list(value: object) -> list[tuple[str, float]]:
    """The API's `loras` (None: none) as (name, weight) pairs; anything else is an InputError."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise InputError(f"loras must be {ACCEPTED}, got {value!r}")
    pairs = []
    for item in value:
        if isinstance(item, str):
            pairs.append(parse_lora_text(item))
            continue
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise InputError(f"loras item {item!r} is not understood; accepted: {ACCEPTED}")
        name, weight = item
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise InputError(f"LoRA {name!r}: weight {weight!r} is not a number")
        pairs.append((name.strip(), float(weight)))
    return pairs


def resolve_loras(prompt: str, negative: str, given: object) -> tuple[LoraUse, ...]:
    """The job's LoRAs: the prompt's <lora:NAME:W> tags, then `given`; the same name twice must agree."""
    if lora_tags(negative):
        raise InputError("a <lora:...> tag in the negative prompt is not supported (a LoRA applies to the whole "
                         "image); put it in the prompt")
    wanted: dict[str, float] = {}
    for name, weight in [(tag.name, tag.weight) for tag in lora_tags(prompt)] + check_lora_list(given):
        if not math.isfinite(weight):
            raise InputError(f"LoRA {name!r}: the weight must be a finite number, got {weight}")
        if name in wanted and wanted[name] != weight:
            raise InputError(f"LoRA {name!r} is given twice with different weights ({wanted[name]:g} and "
                             f"{weight:g}); give it once")
        wanted[name] = weight
    return tuple(lora_use(name, weight) for name, weight in wanted.items())


def resolve_embeddings(*texts: str) -> tuple[EmbeddingUse, ...]:
    return embeddings_for(*texts)
