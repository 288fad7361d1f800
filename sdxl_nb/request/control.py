"""ControlNet units of a request: {"model", "image", "preprocessor", "weight", "start", "end", ...} -> ControlUnit; no torch."""

from __future__ import annotations

from dataclasses import dataclass

from sdxl_nb.config.limits import check_number
from sdxl_nb.errors import InputError
from sdxl_nb.request.annotators import ANNOTATORS, check_annotator
from sdxl_nb.request.control_maps import (
    ANNOTATOR_PREPROCESSORS,
    PREPROCESSORS,
    canonical,
    check_preprocessor_settings,
)

MAX_CONTROLNETS = 4  # units per job (A1111's extension defaults to 3; each adds a ControlNet pass per step)
MAX_CONTROL_WEIGHT = 2.0  # A1111's slider range
RESIZE_MODE = "Just Resize"  # the control image is stretched to the job's size, as A1111's mode of that name
UNIT_KEYS = ("model", "image", "preprocessor", "weight", "start", "end", "low_threshold", "high_threshold")
_ALIASES = {"type": "preprocessor", "module": "preprocessor", "control_type": "preprocessor",
            "guidance_start": "start", "guidance_end": "end"}


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet of a job: which weights, which image and map, how strongly and over which part of the run."""

    model: str  # the ControlNet's name (registry)
    model_path: str  # its folder or single file
    model_source: str
    model_revision: str  # the HF commit of a cached one, else ""
    model_sha256: str  # sha256 of its weights file
    image_path: str
    image_sha256: str
    image_size: tuple[int, int]
    preprocessor: str
    settings: tuple[tuple[str, int], ...]  # the preprocessor's settings, e.g. (("low_threshold", 100), ...)
    weight: float
    start: float
    end: float
    annotator_files: tuple[tuple[str, str], ...] = ()  # (file, sha256) of an annotator's weights

    @property
    def short_hash(self) -> str:
        """What sd-webui-controlnet shows beside the model name (config.controlnets.ControlNetFile.short_hash)."""
        from sdxl_nb.config.controlnets import ControlNetFile

        return ControlNetFile(self.model, self.model_path, self.model_source).short_hash()

    def record(self) -> dict:
        return {"model": {"name": self.model, "path": self.model_path, "source": self.model_source,
                          "revision": self.model_revision, "sha256": self.model_sha256},
                "image": {"path": self.image_path, "sha256": self.image_sha256, "size": list(self.image_size)},
                "preprocessor": self.preprocessor, "settings": dict(self.settings), "weight": self.weight,
                "start": self.start, "end": self.end, "resize_mode": RESIZE_MODE,
                **({"annotator_files": dict(self.annotator_files)} if self.annotator_files else {})}


def _fraction(value: object, name: str) -> float:
    fraction = check_number(value, name)
    if not 0 <= fraction <= 1:
        raise InputError(f"{name} {value} is out of range; accepted: 0 to 1 (a fraction of the steps)")
    return fraction


def _unit_fields(entry: object, position: int) -> dict:
    label = f"ControlNet {position}"
    if not isinstance(entry, dict):
        raise InputError(f"{label} must be a dict with keys {', '.join(UNIT_KEYS)}, got {type(entry).__name__}")
    fields = {}
    for key, value in entry.items():
        key = _ALIASES.get(key, key)
        if key not in UNIT_KEYS:
            raise InputError(f"{label} has an unknown key {key!r}; accepted: {', '.join(UNIT_KEYS)}")
        fields[key] = value
    for key in ("model", "image"):
        if fields.get(key) is None:
            raise InputError(f"{label} needs {'a model' if key == 'model' else 'a control image'} ({key!r})")
    return fields


def resolve_controlnets(entries: list | tuple | None, read_image) -> tuple[ControlUnit, ...]:
    """Validate every unit before any work: model known, image readable (`read_image`: resolve's reader of input
    images, size and decoding budget), preprocessor here, numbers in range."""
    from sdxl_nb.config.controlnets import find_controlnet

    if entries is None:
        return ()
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, (list, tuple)):
        raise InputError(f"controlnets must be a list of dicts, got {type(entries).__name__}")
    if len(entries) > MAX_CONTROLNETS:
        raise InputError(f"{len(entries)} ControlNets; accepted: at most {MAX_CONTROLNETS} per job")
    units = []
    for position, entry in enumerate(entries):
        fields = _unit_fields(entry, position)
        label = f"ControlNet {position}"
        preprocessor = canonical(fields.get("preprocessor") or "none")
        if preprocessor in ANNOTATOR_PREPROCESSORS:
            raise InputError(ANNOTATOR_PREPROCESSORS[preprocessor])
        if preprocessor not in PREPROCESSORS:
            raise InputError(f"{label}: unknown preprocessor {preprocessor!r}; accepted: {', '.join(PREPROCESSORS)}")
        settings = check_preprocessor_settings(preprocessor, fields, label)
        annotator_files = tuple(check_annotator(preprocessor, label).items()) if preprocessor in ANNOTATORS else ()
        weight = 1.0 if fields.get("weight") is None else check_number(fields["weight"], f"{label} weight")
        if not 0 <= weight <= MAX_CONTROL_WEIGHT:
            raise InputError(f"{label} weight {fields['weight']} is out of range; accepted: 0 to {MAX_CONTROL_WEIGHT:g}")
        start = 0.0 if fields.get("start") is None else _fraction(fields["start"], f"{label} start")
        end = 1.0 if fields.get("end") is None else _fraction(fields["end"], f"{label} end")
        if start >= end:
            raise InputError(f"{label} start {start:g} is not before its end {end:g}; accepted: 0 <= start < end <= 1")
        model = find_controlnet(fields["model"])
        image = read_image(fields["image"], f"{label} control image")
        units.append(ControlUnit(
            model=model.name, model_path=model.path, model_source=model.source, model_revision=model.revision,
            model_sha256=model.content_hash(), image_path=image.path, image_sha256=image.sha256,
            image_size=image.size, preprocessor=preprocessor, settings=settings, weight=weight, start=start, end=end,
            annotator_files=annotator_files))
    return tuple(units)


def recorded_unit(entry: object, position: int, folder) -> ControlUnit:
    """A recorded unit as it ran; ValueError (one line) when its weights or image are gone or changed."""
    from pathlib import Path

    from sdxl_nb.config.controlnets import ControlNetFile, find_controlnet
    from sdxl_nb.record.store import sha256_file

    label = f"ControlNet {position}"
    model, image = (entry.get(key) if isinstance(entry, dict) else None for key in ("model", "image"))
    if not (isinstance(model, dict) and isinstance(image, dict) and isinstance(image.get("path"), str)):
        raise ValueError(f"the record's {label} has no model and image")
    weights = ControlNetFile(str(model.get("name")), str(model.get("path")), str(model.get("source") or ""),
                             str(model.get("revision") or ""))
    if not Path(weights.path).exists():
        try:
            weights = find_controlnet(weights.name)  # the embedded one is rebuilt, byte for byte
        except InputError:
            raise ValueError(f"{label} {weights.name!r} ({weights.path}) is missing; the job cannot be re-run "
                             "from its record") from None
    actual = weights.content_hash()
    if model.get("sha256") and actual != model["sha256"]:
        raise ValueError(f"{label} {weights.name!r} changed since the job (sha256 {actual[:12]}..., recorded "
                         f"{str(model['sha256'])[:12]}...)")
    path = Path(image["path"]).expanduser()
    path = path if path.is_absolute() else Path(folder) / path
    if not path.is_file():
        raise ValueError(f"{label} control image {path} is missing; the job cannot be re-run from its record")
    digest = sha256_file(path)
    if image.get("sha256") and digest != image["sha256"]:
        raise ValueError(f"{label} control image {path} changed since the job (sha256 {digest[:12]}...)")
    settings = entry.get("settings") if isinstance(entry.get("settings"), dict) else {}
    size = image.get("size") if isinstance(image.get("size"), list) and len(image["size"]) == 2 else (0, 0)
    return ControlUnit(
        model=weights.name, model_path=weights.path, model_source=weights.source, model_revision=weights.revision,
        model_sha256=actual, image_path=str(path), image_sha256=digest, image_size=(int(size[0]), int(size[1])),
        preprocessor=str(entry.get("preprocessor") or "none"),
        settings=tuple((str(key), int(value)) for key, value in settings.items()),
        weight=float(entry.get("weight", 1.0)), start=float(entry.get("start", 0.0)), end=float(entry.get("end", 1.0)),
        annotator_files=tuple((str(k), str(v)) for k, v in (entry.get("annotator_files") or {}).items()))


def controlnet_weight_bytes(units, dtype: str) -> dict[str, int]:
    """{"controlnet 0": bytes, ...}: each ControlNet's parameters in the model's dtype (counted from the file's
    header), for the memory check; a file whose header cannot be read counts as its size on disk."""
    import math

    from sdxl_nb.config.controlnets import ControlNetFile
    from sdxl_nb.config.safetensors_file import safetensors_header
    from sdxl_nb.request.memory import DTYPE_BYTES

    found = {}
    for index, unit in enumerate(units):
        path = None
        try:
            path = ControlNetFile(unit.model, unit.model_path, unit.model_source).weights_file()
            header = safetensors_header(path)
            count = sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__")
            found[f"controlnet {index}"] = count * DTYPE_BYTES.get(dtype, 2)
        except (InputError, OSError):
            found[f"controlnet {index}"] = path.stat().st_size if path is not None and path.is_file() else 0
    return found
