"""Whether a path lies inside a folder the user configured for its kind of file (or the HF cache, or sdxl_nb's cache)."""

from __future__ import annotations

import os
from pathlib import Path

# The kinds of file a record can name, each read from the folders the user set for it.
KINDS = ("checkpoint", "refiner", "lora", "embedding", "upscaler", "controlnet", "ip_adapter", "annotator")
OUTSIDE_MODEL_FOLDERS = "not re-run (file outside your model folders)"
OUTSIDE_INPUTS = "not re-run (input outside the audited folder)"


class NotTrusted(ValueError):
    """A file a record names that lies outside the folders it may be read from: it is never opened."""

    def __init__(self, verdict: str, path: object, what: str = ""):
        self.verdict = verdict
        self.path = str(path)
        super().__init__(f"{verdict}: {path}" + (f" ({what})" if what else ""))


def resolved(path: str | os.PathLike) -> Path | None:
    """The absolute path with `~`, `..` and every symlink resolved; None for a path that cannot name a file."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError, TypeError):  # a symlink loop, a NUL byte, not a path at all
        return None


def within(folder: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """`path` (relative ones are relative to `folder`) resolved, when it lies inside `folder` (resolved too); else None.

    A symlink inside the folder that points outside it is outside.
    """
    root = resolved(folder)
    try:
        candidate = Path(path).expanduser()
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: `~user` of no such user
        return None
    target = resolved(candidate if candidate.is_absolute() else Path(folder) / candidate)
    if root is None or target is None or not target.is_relative_to(root):
        return None
    return target


def _kind_folders(kind: str) -> list[Path]:
    from sdxl_nb import settings
    from sdxl_nb.config.loras import search_folders

    if kind in ("checkpoint", "refiner"):
        from sdxl_nb.config.checkpoints import checkpoint_folders

        return checkpoint_folders()
    if kind == "lora":
        from sdxl_nb.config.loras import lora_folders

        return lora_folders()
    if kind == "embedding":
        from sdxl_nb.config.embeddings import ROOT_LAYOUTS

        return search_folders(settings.embedding_paths(), ROOT_LAYOUTS)
    if kind == "upscaler":
        from sdxl_nb.config.upscalers import upscaler_folders

        return upscaler_folders()
    if kind == "controlnet":
        from sdxl_nb.config.controlnets import controlnet_folders

        return controlnet_folders()
    if kind == "ip_adapter":
        return [Path(raw).expanduser() for raw in settings.ip_adapter_paths()]
    if kind == "annotator":
        return [Path(settings.annotators_dir()).expanduser()] if settings.annotators_dir() else []
    raise ValueError(f"unknown kind of model file {kind!r}; accepted: {', '.join(KINDS)}")


def model_folders(kind: str) -> list[Path]:
    """The folders (resolved) a file of this kind may be loaded from: the user's folders for that kind, the Hugging
    Face cache and sdxl_nb's own cache (the embedded tiny models, demo LoRA, ControlNet and IP-Adapter)."""
    from sdxl_nb.config.registry import hf_cache_dir
    from sdxl_nb.config.tiny import cache_root

    folders = []
    for folder in [*_kind_folders(kind), hf_cache_dir(), cache_root()]:
        found = resolved(folder)
        if found is not None and found not in folders:
            folders.append(found)
    return folders


def in_model_folders(path: object, kind: str) -> bool:
    """Whether `path` (after `~`, `..` and symlinks are resolved) lies inside a folder `model_folders(kind)` names."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        return False
    target = resolved(path)
    return target is not None and any(target.is_relative_to(folder) for folder in model_folders(kind))


def check_model_file(path: object, kind: str, what: str = "") -> Path:
    """`path` resolved when it lies in the user's folders for `kind`; else NotTrusted naming it (nothing is opened)."""
    if not in_model_folders(path, kind):
        raise NotTrusted(OUTSIDE_MODEL_FOLDERS, path, what)
    return resolved(path)


FOUND_IN_YOUR_FOLDERS = "found in your folders"
_MAX_WALKED = 100_000  # entries looked at per search: a folder that large is walked no further


def own_copy(path: object, kind: str, sha256: object, digest=None) -> Path | None:
    """A file (or folder) of the same name as `path`, in the user's own folders for `kind`, whose sha256 is `sha256`
    (`digest(path)` computes it; default: the file's bytes); None when there is none. What a received record names
    outside those folders is found here, never opened there. Links leading out of the folders are passed over."""
    from sdxl_nb.config.loras import file_sha256

    if not (isinstance(path, str) and path and isinstance(sha256, str) and sha256):
        return None
    name = Path(path.replace("\\", "/")).name
    if name in ("", ".", ".."):
        return None
    digest = digest or file_sha256
    walked = 0
    for folder in _kind_folders(kind):
        for root, folders, files in os.walk(folder):  # links to folders are not followed
            walked += len(folders) + len(files)
            if walked > _MAX_WALKED:
                return None
            if name not in folders and name not in files:
                continue
            candidate = Path(root) / name
            if not in_model_folders(candidate, kind):
                continue
            try:
                if digest(candidate) == sha256:
                    return resolved(candidate)
            except (OSError, ValueError):  # unreadable, or not this kind's file (InputError is a ValueError)
                continue
    return None


def trusted_model_file(path: object, kind: str, sha256: object, what: str = "",
                       digest=None) -> tuple[Path, str | None]:
    """(the file to load, a note or None): `path` itself when it lies in the user's folders for `kind`; else the
    user's own file of the same name and sha256 (own_copy), with the note "found in your folders: PATH"; else
    NotTrusted naming `path` (nothing is opened)."""
    if in_model_folders(path, kind):
        return resolved(path), None
    found = own_copy(path, kind, sha256, digest)
    if found is None:
        raise NotTrusted(OUTSIDE_MODEL_FOLDERS, path, what)
    return found, f"{what} recorded at {path}: {FOUND_IN_YOUR_FOLDERS}: {found}".lstrip()
