"""Masks secrets (API keys and tokens from the environment, given values, URL credentials) in any text."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

# Variables whose values are secrets by name; plus any name ending in one of SECRET_SUFFIXES.
SECRET_NAMES = frozenset({"LAMBDA_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "JUPYTER_TOKEN", "COMFYUI_TOKEN"})
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_SECRET_ACCESS_KEY", "_PASSWORD")
# Shorter values ("1", "yes") would mask ordinary words; real keys are far longer.
MIN_SECRET_LENGTH = 8
# A value the caller knows is secret (a URL's password, a client's key) is masked from this length on.
MIN_GIVEN_LENGTH = 4
# The user-info of a URL (scheme://user:password@host): a token is often passed as the user part alone.
_URL_USER_INFO = re.compile(r"(\w+://)[^/@\s]+@")


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


def without_credentials(url: str) -> str:
    """A URL with any user:password@ part removed (for messages and records)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def mask(text: str, environ: Mapping[str, str] | None = None, *, given: Iterable[str] = ()) -> str:
    """`text` with every environment secret replaced by `<NAME masked>`, each `given` value by `***`,
    and URL user-info (`scheme://user:password@`) by `scheme://***@`."""
    if not isinstance(text, str) or not text:
        return text
    return _mask_text(text, secret_values(environ), _given(given))


def mask_data(value, environ: Mapping[str, str] | None = None, *, given: Iterable[str] = ()):
    """The same structure (dicts, lists, tuples, strings) masked as `mask` does in every string, keys included;
    the object itself when nothing was masked."""
    masked = _mask_with(value, secret_values(environ), _given(given))
    return value if masked == value else masked


def _given(values: Iterable[str]) -> list[str]:
    # Longest first, so a secret that contains another is masked whole.
    return sorted({v for v in values if v and len(v) >= MIN_GIVEN_LENGTH}, key=len, reverse=True)


def _mask_text(text: str, secrets: dict[str, str], given: list[str]) -> str:
    for secret, name in secrets.items():
        if secret in text:
            text = text.replace(secret, f"<{name} masked>")
    for secret in given:
        text = text.replace(secret, "***")
    return _URL_USER_INFO.sub(r"\1***@", text) if "@" in text else text


def _mask_with(value, secrets: dict[str, str], given: list[str]):
    if isinstance(value, str):
        return _mask_text(value, secrets, given)
    if isinstance(value, dict):
        return {_mask_with(k, secrets, given): _mask_with(v, secrets, given) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_with(v, secrets, given) for v in value)
    return value
