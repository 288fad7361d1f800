"""The ControlNet registry: the embedded tiny one, HF-cache diffusers folders and SDXL_NB_CONTROLNETS files; no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.loras import file_sha256, search_folders
from sdxl_nb.config.name_clash import clash_warning, clashes
from sdxl_nb.config.registry import hf_cache_dir
from sdxl_nb.config.safetensors_file import header_problem
from sdxl_nb.errors import InputError

TINY_CONTROLNET = "tiny-sdxl-controlnet"
# Where ControlNets sit under a tool's root: A1111 (models/ControlNet) and ComfyUI (models/controlnet).
ROOT_LAYOUTS = ("models/ControlNet", "models/controlnet")
CONTROLNET_CLASSES = ("ControlNetModel",)


@dataclass(frozen=True)
class ControlNetFile:
    """One ControlNet by name: a diffusers folder (config.json + weights) or a single .safetensors file."""

    name: str  # what --controlnet NAME and controlnets=[{"model": NAME}] use
    path: str  # the folder or the file
    source: str  # "embedded", "hf-cache" or the folder it was found in
    revision: str = ""  # the HF commit of a cached one; "" where the content hash says it

    @property
    def single_file(self) -> bool:
        return Path(self.path).is_file()

    @property
    def size_bytes(self) -> int:
        path = Path(self.path)
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    def content_hash(self) -> str:
        """sha256 of the weights file (a folder's: its one .safetensors); names the exact weights that ran."""
        return file_sha256(str(self.weights_file()))

    def weights_file(self) -> Path:
        path = Path(self.path)
        if path.is_file():
            return path
        found = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if not found:
            raise InputError(f"ControlNet {self.name!r} ({path}) holds no .safetensors weights")
        return found[0]

    def short_hash(self) -> str:
        """The hash A1111's ControlNet extension shows beside the model name: A1111's short model hash of the
        weights file (its scripts/global_state.py get_all_models calls modules/sd_models.py model_hash)."""
        from sdxl_nb.config.checkpoints import a1111_short_hash

        return a1111_short_hash(self.weights_file())


def controlnet_folders() -> list[Path]:
    return search_folders(settings.controlnet_paths(), ROOT_LAYOUTS)


def _is_controlnet_folder(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("_class_name") in CONTROLNET_CLASSES


def _cached() -> list[ControlNetFile]:
    root = hf_cache_dir()
    found = []
    if not root.is_dir():
        return found
    for repo in sorted(root.glob("models--*")):
        snapshots = repo / "snapshots"
        ref = repo / "refs" / "main"
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
        candidates = [snapshots / commit] if commit and (snapshots / commit).is_dir() else sorted(
            snapshots.glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for snapshot in candidates[:1]:
            if _is_controlnet_folder(snapshot):
                name = repo.name[len("models--"):].replace("--", "/")
                found.append(ControlNetFile(name, str(snapshot), "hf-cache", snapshot.name))
    return found


def _in_folders() -> list[ControlNetFile]:
    found = []
    for folder in controlnet_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix == ".safetensors":
                found.append(ControlNetFile(path.stem, str(path), str(folder)))
            elif path.is_dir() and _is_controlnet_folder(path):
                found.append(ControlNetFile(path.name, str(path), str(folder)))
    return found


def tiny_controlnet() -> ControlNetFile:
    from sdxl_nb.config.tiny_controlnet import ensure_tiny_controlnet

    return ControlNetFile(TINY_CONTROLNET, str(ensure_tiny_controlnet()), "embedded")


def list_controlnets(*, embedded: bool = True) -> list[ControlNetFile]:
    """Every ControlNet by name: the embedded one, the HF cache's, then each folder's (first name wins)."""
    found: dict[str, ControlNetFile] = {}
    if embedded:
        found[TINY_CONTROLNET] = tiny_controlnet()
    for entry in _cached() + _in_folders():
        found.setdefault(entry.name, entry)
    return list(found.values())


def controlnet_clashes() -> dict[str, list[str]]:
    """name -> every ControlNet of that name (the first is the one used), for names two of them share."""
    return clashes([(TINY_CONTROLNET, "the embedded tiny ControlNet"),
                    *((entry.name, entry.path) for entry in _cached() + _in_folders())])


def controlnet_clash_warnings(names) -> list[str]:
    """A job's warnings for the ControlNet names it uses that several files share."""
    table = controlnet_clashes()
    return [line for name in dict.fromkeys(names) for line in clash_warning("ControlNet", name, table)]


def controlnet_problem(entry: ControlNetFile) -> str | None:
    """Why a ControlNet cannot be used: no weights, or a .safetensors file whose header is unusable; else None."""
    try:
        return header_problem(str(entry.weights_file()))
    except (InputError, OSError) as exc:
        return str(exc)


def find_controlnet(name: object) -> ControlNetFile:
    """The ControlNet of that name; an unknown or unusable one is an InputError (the known names, or why)."""
    if not isinstance(name, str) or not name:
        raise InputError(f"a ControlNet model must be named by text, got {name!r}")
    if name == TINY_CONTROLNET:
        return tiny_controlnet()
    for entry in _cached() + _in_folders():
        if entry.name == name:
            problem = controlnet_problem(entry)
            if problem:
                raise InputError(f"ControlNet {name!r} is unusable: {problem}")
            return entry
    known = [entry.name for entry in list_controlnets(embedded=False)]
    where = (f" in the HF cache or {', '.join(str(f) for f in controlnet_folders())}" if controlnet_folders()
             else f" in the HF cache ({settings.CONTROLNETS} is not set)")
    raise InputError(f"unknown ControlNet {name!r}{where}; accepted: {', '.join([TINY_CONTROLNET, *known])}")
