"""Masks secret values from the environment (API keys, tokens) in any text before it is recorded or shown."""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables whose values are secrets by name; plus any name ending in one of SECRET_SUFFIXES.
SECRET_NAMES = frozenset({"LAMBDA_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN",
                          "HUGGING_FACE_HUB_TOKEN", "JUPYTER_TOKEN", "COMFYUI_TOKEN"})
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_SECRET_ACCESS_KEY", "_PASSWORD")
# Shorter values ("1", "yes") would mask ordinary words; real keys are far longer.
MIN_SECRET_LENGTH = 8


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in SECRET_NAMES or upper.endswith(SECRET_SUFFIXES)


def secret_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """value -> variable name, for every secret-named variable set in the environment (read at call time)."""
    environ = os.environ if environ is None else environ
    found = {value: name for name, value in environ.items()
             if is_secret_name(name) and value and len(value.strip()) >= MIN_SECRET_LENGTH}
    # Longest first, so a secret that contains another is masked whole.
    return dict(sorted(found.items(), key=lambda item: -len(item[0])))


def mask(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every secret value replaced by `<NAME masked>`."""
    if not isinstance(text, str) or not text:
        return text
    for value, name in secret_values(environ).items():
        if value in text:
            text = text.replace(value, f"<{name} masked>")
    return text


def mask_data(value, environ: Mapping[str, str] | None = None):
    """The same structure (dicts, lists, tuples, strings) with secrets masked in every string, keys included."""
    secrets = secret_values(environ)
    if not secrets:
        return value
    return _mask_with(value, secrets)


def _mask_with(value, secrets: dict[str, str]):
    if isinstance(value, str):
        for secret, name in secrets.items():
            if secret in value:
                value = value.replace(secret, f"<{name} masked>")
        return value
    if isinstance(value, dict):
        return {_mask_with(k, secrets): _mask_with(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_with(v, secrets) for v in value)
    return value
