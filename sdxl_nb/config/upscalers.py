"""Upscalers by name: A1111's built-in latent and Lanczos ones, and model files in SDXL_NB_UPSCALERS folders; no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.loras import file_sha256, search_folders
from sdxl_nb.config.name_clash import clash_warning, clashes
from sdxl_nb.config.safetensors_file import header_problem
from sdxl_nb.errors import InputError

# Where upscaler models sit under a tool's root: A1111 (one folder per architecture) and ComfyUI.
ROOT_LAYOUTS = ("models/ESRGAN", "models/RealESRGAN", "models/SwinIR", "models/DAT", "models/upscale_models")
EXTENSIONS = (".pth", ".pt", ".safetensors")

# A1111's names. Latent ones interpolate the first pass's latents (torch mode, antialias), as A1111's
# `latent_upscale_modes`; ComfyUI's LatentUpscaleBy has the same torch modes.
LATENT = {"Latent": ("bilinear", False), "Latent (bicubic)": ("bicubic", False),
          "Latent (nearest-exact)": ("nearest-exact", False)}
PIXEL = {"Lanczos": "lanczos"}  # PIL resampling of the decoded image
DEFAULT_UPSCALER = "Latent"  # A1111's default hires upscaler


@dataclass(frozen=True)
class Upscaler:
    """One upscaler: built in ("latent" or "pixel") or a model file ("model", with its path and content hash)."""

    name: str
    kind: str  # "latent", "pixel" or "model"
    method: str = ""  # the torch interpolation mode (latent) or PIL filter (pixel); "" for a model
    path: str | None = None
    sha256: str | None = None

    def record(self) -> dict:
        entry = {"name": self.name, "kind": self.kind}
        if self.kind == "model":
            entry.update(path=self.path, sha256=self.sha256)
        else:
            entry["method"] = self.method
        return entry


def upscaler_folders() -> list[Path]:
    return search_folders(settings.upscaler_paths(), ROOT_LAYOUTS)


def _all_files() -> list[Path]:
    found = []
    for folder in upscaler_folders():
        if folder.is_dir():
            found += [path for path in sorted(folder.rglob("*")) if path.suffix.lower() in EXTENSIONS and path.is_file()]
    return found


def model_files() -> dict[str, Path]:
    """name (file name without extension) -> path of every upscaler model file; a name found twice (two folders,
    or a.pth and a.safetensors): the first wins, and `upscaler_clashes` says it. A built-in name is never a file's."""
    found: dict[str, Path] = {}
    for path in _all_files():
        if path.stem not in LATENT and path.stem not in PIXEL:
            found.setdefault(path.stem, path)
    return found


def upscaler_clashes() -> dict[str, list[str]]:
    """name -> every upscaler of that name (the first is the one used), for names two files (or a file and a
    built-in upscaler) share."""
    return clashes([*((name, f"the built-in {name!r}") for name in builtin_names()),
                    *((path.stem, str(path)) for path in _all_files())])


def upscaler_clash_warnings(name: str) -> list[str]:
    """A job's warning when its upscaler's name is shared ([] otherwise)."""
    return clash_warning("upscaler", name, upscaler_clashes())


def builtin_names() -> list[str]:
    return [*LATENT, *PIXEL]


def list_upscalers() -> list[dict]:
    """Every upscaler by name: the built-in ones, then each model file: {name, kind, path, size_bytes, usable,
    problem (why a .safetensors file's header is unusable; a .pth is checked by loading it: --check), clash}."""
    table = upscaler_clashes()
    rows = [{"name": name, "kind": "latent", "path": None, "size_bytes": None} for name in LATENT]
    rows += [{"name": name, "kind": "pixel", "path": None, "size_bytes": None} for name in PIXEL]
    rows += [{"name": name, "kind": "model", "path": str(path), "size_bytes": path.stat().st_size}
             for name, path in model_files().items()]
    for row in rows:
        problem = header_problem(row["path"]) if row["path"] else None
        clash = clash_warning("upscaler", row["name"], table)
        row.update(usable=problem is None, problem=problem, clash=clash[0] if clash else None)
    return rows


def find_upscaler(name: object) -> Upscaler:
    """The upscaler of that name (a model file is hashed); an unknown name is one InputError line."""
    if not isinstance(name, str):
        raise InputError(f"upscaler must be a name, got {type(name).__name__}")
    if name in LATENT:
        return Upscaler(name=name, kind="latent", method=LATENT[name][0])
    if name in PIXEL:
        return Upscaler(name=name, kind="pixel", method=PIXEL[name])
    files = model_files()
    if name in files:
        problem = header_problem(str(files[name]))
        if problem:
            raise InputError(f"upscaler {name!r} is unusable: {problem}")
        return Upscaler(name=name, kind="model", path=str(files[name]), sha256=file_sha256(files[name]))
    where = (f" in {', '.join(str(f) for f in upscaler_folders())}" if upscaler_folders()
             else f" ({settings.UPSCALERS} is not set)")
    raise InputError(f"unknown upscaler {name!r}{where}; accepted: {', '.join([*builtin_names(), *files])}")


def recorded_upscaler(entry: object) -> Upscaler:
    """The upscaler a record names; a model file must still hold what the job used (else ValueError, one line)."""
    if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)):
        raise ValueError(f"the record's hires upscaler {entry!r} has no name")
    if entry.get("kind") != "model":
        return find_upscaler(entry["name"])
    path = entry.get("path")
    if not (isinstance(path, str) and Path(path).is_file()):
        raise ValueError(f"upscaler {entry['name']!r} ({path}) is missing; the job cannot be re-run from its record")
    actual = file_sha256(path)
    if actual != entry.get("sha256"):
        raise ValueError(f"upscaler {entry['name']!r} ({path}) changed since the job (sha256 {actual[:12]}..., "
                         f"recorded {str(entry.get('sha256'))[:12]}...)")
    return Upscaler(name=entry["name"], kind="model", path=path, sha256=actual)
