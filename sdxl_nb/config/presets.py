"""Loads and validates presets.json (models, schedulers, styles, resolutions) into frozen dataclasses."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sdxl_nb import settings
from sdxl_nb.config.json_checker import JsonChecker, read_json_file, shown
from sdxl_nb.config.limits import MAX_CFG, MAX_SIZE, MAX_STEPS, MIN_SIZE
from sdxl_nb.config.options import EngineOptions, options_from_dict
from sdxl_nb.config.scheduler_params import EXTRA_REQUIREMENTS, check_kwargs, known_classes
from sdxl_nb.errors import InputError, PresetError

# diffusers scheduler classes a preset may name; checked here so presets.json is validated without torch.
KNOWN_SCHEDULER_CLASSES = known_classes()
PRESETS_SCHEMAS = (1,)  # presets.json and user presets file versions this lab reads
DEFAULT_SCHEDULER = "Default"


@dataclass(frozen=True)
class ModelPreset:
    id: str
    description: str
    steps: int  # default steps when neither the request nor the style sets them
    cfg: float  # default guidance scale, likewise
    heavy: bool  # full-size SDXL UNet: needs a GPU with >= 10 GB in fp16
    turbo: bool  # distilled few-step model (1-4 steps, cfg 0)
    source: str = "hf"  # "hf" (Hugging Face cache), "embedded" (built locally) or "checkpoint" (found as a file)
    native_size: tuple[int, int] | None = None  # default (width, height) instead of the global resolution
    vae: str | None = None  # dedicated VAE repo used when it is in the cache
    refiner: bool = False  # an SDXL refiner (img2img, second text encoder only): picked as a refiner, never as a base
    # The sampler and schedule type the model is made for (few-step models: trailing timesteps), used when the
    # request sets none; for a turbo model they win over a style's, as its steps and cfg do.
    scheduler: str | None = None
    schedule_type: str | None = None
    inpainting: bool = False  # a 9-channel inpainting UNet (latents + mask + masked-image latents)


@dataclass(frozen=True)
class SchedulerPreset:
    name: str
    cls: str | None  # diffusers class name; None keeps the model's own scheduler
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    a1111: tuple[str, str] | None = None  # (Sampler, Schedule type) as A1111 writes them
    comfy: tuple[str, str] | None = None  # (sampler_name, scheduler) as ComfyUI's KSampler takes them


@dataclass(frozen=True)
class StylePreset:
    name: str
    prompt: str  # a template with {prompt}, or a suffix appended after a comma
    negative: str = ""
    description: str = ""
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    schedule_type: str | None = None  # an A1111 schedule type label (config/schedule_types.py)

    @property
    def content_hash(self) -> str:
        """Hash of what the style does (not its description): records name the exact style used."""
        content = {"prompt": self.prompt, "negative": self.negative, "scheduler": self.scheduler,
                   "steps": self.steps, "cfg": self.cfg}
        if self.schedule_type is not None:  # only when set: styles without one keep the hash they always had
            content["schedule_type"] = self.schedule_type
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]

    def apply(self, prompt: str, negative: str) -> tuple[str, str]:
        """Return (styled prompt, effective negative prompt)."""
        if "{prompt}" in self.prompt:
            styled = self.prompt.replace("{prompt}", prompt)
        else:
            styled = ", ".join(part for part in (prompt, self.prompt) if part)
        effective_negative = ", ".join(part for part in (negative.strip(), self.negative) if part)
        return styled.strip(" ,"), effective_negative


@dataclass(frozen=True)
class Resolution:
    name: str
    width: int
    height: int
    label: str = ""


@dataclass(frozen=True)
class EngineProfile:
    name: str
    description: str
    options: EngineOptions


@dataclass(frozen=True)
class Defaults:
    model: str
    scheduler: str
    style: str
    resolution: str
    steps: int
    cfg: float
    strength: float
    engine_profile: str = "Default"


@dataclass(frozen=True)
class Presets:
    path: str
    defaults: Defaults
    models: dict[str, ModelPreset]
    schedulers: dict[str, SchedulerPreset]
    styles: dict[str, StylePreset]
    resolutions: dict[str, Resolution]
    motion_phrases: tuple[str, ...]
    engine_profiles: dict[str, EngineProfile] = field(default_factory=dict)
    user_path: str | None = None  # the user presets file layered over this one (None: no layer)
    user_styles: tuple[str, ...] = ()  # names of styles that come from (or are overridden by) that file
    user_error: str | None = None  # why that file was not read (one line); the built-in presets are used meanwhile


def default_presets_path() -> Path:
    """`SDXL_NB_PRESETS`, else presets.json shipped in the package, else the repo root's."""
    override = settings.presets_path()
    if override:
        return Path(override)
    package = Path(__file__).resolve().parent.parent  # sdxl_nb/, where a wheel carries presets.json
    packaged = package / "presets.json"
    return packaged if packaged.is_file() else package.parent / "presets.json"


def _check_range(check: JsonChecker, key: str, values: dict, name: str, low: float, high: float, *,
                 above: bool = False) -> None:
    """A setting within what a request accepts (the same limits as sdxl_nb.request.resolve)."""
    value = values.get(name)
    if value is None:
        return
    if (value <= low if above else value < low) or value > high:
        accepted = f"greater than {low:g}, at most {high:g}" if above else f"{low:g} to {high:g}"
        raise check.fail(f"{key}.{name}", f"{value:g} is out of range; accepted: {accepted}")


def _model(check: JsonChecker, raw: Any, key: str) -> ModelPreset:
    v = check.entry(raw, key, {"id": "str", "description": "str", "steps": "int", "cfg": "float", "heavy": "bool"},
                    {"turbo": "bool", "source": "str", "native_size": "pair_int", "vae": "str", "refiner": "bool",
                     "scheduler": "str", "schedule_type": "str", "inpainting": "bool"})
    if v.get("source", "hf") not in ("hf", "embedded"):
        raise check.fail(f"{key}.source", f"unknown source {shown(v['source'])}; accepted: hf, embedded")
    _check_range(check, key, v, "steps", 1, MAX_STEPS)
    _check_range(check, key, v, "cfg", 0, MAX_CFG)
    _check_positive_size(check, key, v.get("native_size"))
    return ModelPreset(turbo=v.pop("turbo", False), **v)


def _scheduler(check: JsonChecker, raw: Any, key: str) -> SchedulerPreset:
    if not isinstance(raw, dict):
        raise check.fail(key, "expected an object")
    cls = raw.get("class")
    if cls is not None and cls not in KNOWN_SCHEDULER_CLASSES:
        raise check.fail(f"{key}.class", f"unknown scheduler class {shown(cls)}; accepted: {', '.join(sorted(KNOWN_SCHEDULER_CLASSES))}")
    rest = {k: val for k, val in raw.items() if k != "class"}
    v = check.entry(rest, key, {"name": "str"}, {"kwargs": "dict", "description": "str", "a1111": "pair_str", "comfy": "pair_str"})
    if cls is None and v["name"] != DEFAULT_SCHEDULER:
        raise check.fail(f"{key}.class", f"missing; only {DEFAULT_SCHEDULER!r} may keep the model's own scheduler")
    kwargs = v.get("kwargs") or {}
    if cls is None and kwargs:
        raise check.fail(f"{key}.kwargs", "needs a class: the model's own scheduler class is not known before it loads")
    problem = check_kwargs(cls, kwargs) if cls else None
    if problem:
        raise check.fail(f"{key}.kwargs", problem)
    return SchedulerPreset(cls=cls, **v)


def check_scheduler_installed(scheduler: SchedulerPreset) -> None:
    """InputError when the preset's class needs a package that is not installed (diffusers would hand out a
    stand-in that fails at the first step)."""
    import importlib.util

    package = EXTRA_REQUIREMENTS.get(scheduler.cls or "")
    if package and importlib.util.find_spec(package) is None:
        raise InputError(f"scheduler {scheduler.name} ({scheduler.cls}) needs the package {package!r}, which is not "
                         f"installed; accepted: another scheduler, or `pip install {package}`")


def _style(check: JsonChecker, raw: Any, key: str) -> StylePreset:
    v = check.entry(raw, key, {"name": "str", "prompt": "str"},
                    {"negative": "str", "description": "str", "scheduler": "str", "steps": "int", "cfg": "float",
                     "schedule_type": "str"})
    if v.get("steps") is not None and v["steps"] < 1:
        raise check.fail(f"{key}.steps", f"must be >= 1, got {v['steps']}")
    if v.get("cfg") is not None and v["cfg"] < 0:
        raise check.fail(f"{key}.cfg", f"must be >= 0, got {v['cfg']}")
    _check_range(check, key, v, "steps", 1, MAX_STEPS)
    _check_range(check, key, v, "cfg", 0, MAX_CFG)
    if v["prompt"].count("{prompt}") > 1:
        raise check.fail(f"{key}.prompt", f"holds {{prompt}} {v['prompt'].count('{prompt}')} times, so the prompt "
                                          "would be sent that many times; keep one {prompt}")
    return StylePreset(**v)


def _resolution(check: JsonChecker, raw: Any, key: str) -> Resolution:
    v = check.entry(raw, key, {"name": "str", "width": "int", "height": "int"}, {"label": "str"})
    _check_positive_size(check, key, (v["width"], v["height"]))
    return Resolution(**v)


def _engine_profile(check: JsonChecker, raw: Any, key: str) -> EngineProfile:
    v = check.entry(raw, key, {"name": "str", "options": "dict"}, {"description": "str"})
    try:
        options = options_from_dict(v["options"], f"{check.path}: {key}.options")
    except InputError as exc:
        raise PresetError(str(exc)) from None
    return EngineProfile(name=v["name"], description=v.get("description", ""), options=options)


def _check_positive_size(check: JsonChecker, key: str, size: tuple[int, int] | None) -> None:
    if size and any(n <= 0 or n % 8 for n in size):
        raise check.fail(key, f"size {size[0]}x{size[1]} must be positive multiples of 8")
    if size and any(not MIN_SIZE <= n <= MAX_SIZE for n in size):
        raise check.fail(key, f"size {size[0]}x{size[1]} is out of range; accepted: multiples of 8 from {MIN_SIZE} "
                              f"to {MAX_SIZE}")


def _check_schema(check: JsonChecker, raw: dict) -> None:
    schema = raw.get("schema", PRESETS_SCHEMAS[-1])
    if isinstance(schema, bool) or schema not in PRESETS_SCHEMAS:
        raise check.fail("schema", f"unknown version {shown(schema, as_json=True)}; accepted: "
                                   f"{', '.join(map(str, PRESETS_SCHEMAS))} (a newer sdxl_nb may read it)")


def parse_presets(raw: Any, path: str) -> Presets:
    """Validate raw presets JSON; every problem raises PresetError naming the file and the key."""
    check = JsonChecker(path)
    if not isinstance(raw, dict):
        raise check.fail("(top level)", "expected a JSON object")
    accepted = {"schema", "defaults", "models", "schedulers", "styles", "resolutions", "motion_phrases",
                "engine_profiles"}
    unknown = sorted(set(raw) - accepted)
    if unknown:
        raise check.fail(unknown[0], f"unknown key; accepted: {', '.join(sorted(accepted))}")
    _check_schema(check, raw)
    models = check.named(raw.get("models"), "models", lambda r, k: _model(check, r, k))
    schedulers = check.named(raw.get("schedulers"), "schedulers", lambda r, k: _scheduler(check, r, k))
    styles = check.named(raw.get("styles"), "styles", lambda r, k: _style(check, r, k))
    resolutions = check.named(raw.get("resolutions"), "resolutions", lambda r, k: _resolution(check, r, k))
    default_profiles = [{"name": "Default", "options": {}}]
    profiles = check.named(raw.get("engine_profiles", default_profiles), "engine_profiles",
                           lambda r, k: _engine_profile(check, r, k))
    phrases = raw.get("motion_phrases", [])
    if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
        raise check.fail("motion_phrases", "expected a list of non-empty strings")
    _check_pairs(check, "styles", styles.values(), schedulers)
    _check_pairs(check, "models", models.values(), schedulers)
    d = check.entry(raw.get("defaults"), "defaults",
                    {"model": "str", "scheduler": "str", "style": "str", "resolution": "str", "steps": "int",
                     "cfg": "float", "strength": "float"}, {"engine_profile": "str"})
    for name, table in (("model", models), ("scheduler", schedulers), ("style", styles), ("resolution", resolutions),
                        ("engine_profile", profiles)):
        if name not in d:
            continue
        if d[name] not in table:
            raise check.fail(f"defaults.{name}", f"unknown {name} {shown(d[name])}; accepted: {', '.join(table)}")
    _check_range(check, "defaults", d, "steps", 1, MAX_STEPS)
    _check_range(check, "defaults", d, "cfg", 0, MAX_CFG)
    _check_range(check, "defaults", d, "strength", 0, 1, above=True)
    return Presets(path=path, defaults=Defaults(**d), models=models, schedulers=schedulers, styles=styles,
                   resolutions=resolutions, motion_phrases=tuple(phrases), engine_profiles=profiles)


def parse_user_styles(raw: Any, path: str, schedulers: dict[str, SchedulerPreset]) -> dict[str, StylePreset]:
    """Validate a user presets file ({"styles": [...]}) with the same rules as presets.json's styles."""
    check = JsonChecker(path)
    if not isinstance(raw, dict):
        raise check.fail("(top level)", "expected a JSON object")
    unknown = sorted(set(raw) - {"schema", "styles"})
    if unknown:
        raise check.fail(unknown[0], "unknown key; accepted: schema, styles")
    _check_schema(check, raw)
    items = raw.get("styles", [])
    if not isinstance(items, list):
        raise check.fail("styles", "expected a list")
    styles = check.named(items, "styles", lambda r, k: _style(check, r, k)) if items else {}
    _check_pairs(check, "styles", styles.values(), schedulers)
    return styles


def _check_pairs(check: JsonChecker, key: str, entries, schedulers: dict[str, SchedulerPreset]) -> None:
    """Each style's or model's scheduler is known, and its schedule type can be made with that scheduler."""
    from sdxl_nb.config.schedule_types import combine, schedule_label

    for index, entry in enumerate(entries):
        if entry.scheduler is not None and entry.scheduler not in schedulers:
            raise check.fail(f"{key}[{index}].scheduler", f"unknown scheduler {shown(entry.scheduler)}; accepted: "
                                                          f"{', '.join(schedulers)}")
        if entry.schedule_type is None:
            continue
        try:
            if schedule_label(entry.schedule_type) != entry.schedule_type:
                raise InputError(f"write the schedule type as A1111 labels it: {schedule_label(entry.schedule_type)!r}")
            if entry.scheduler is not None:
                combine(schedulers[entry.scheduler], entry.schedule_type)
        except InputError as exc:
            raise check.fail(f"{key}[{index}].schedule_type", str(exc)) from None


def default_user_presets_path() -> Path:
    """`SDXL_NB_USER_PRESETS`, else ~/.config/sdxl_nb/user_presets.json (read at call time)."""
    override = settings.user_presets_path()
    return Path(override).expanduser() if override else Path.home() / ".config" / "sdxl_nb" / "user_presets.json"


def load_presets(path: str | os.PathLike | None = None, *, user_path: str | os.PathLike | None = None,
                 user_layer: bool = True) -> Presets:
    """Read and validate a presets file (default: `default_presets_path()`) with the user's styles over it.

    The user presets file (default: `default_user_presets_path()`) adds or replaces styles; a missing
    file adds nothing. A broken one adds nothing either: `user_error` says why (one line, for a panel's red
    line or a warning) and everything built in stays usable. Both files are re-read when they change, so a
    saved style shows at once. A broken presets.json raises PresetError.
    """
    path = Path(path) if path else default_presets_path()
    if not user_layer:
        return _load_cached(str(path), _mtime(path))
    user = Path(user_path) if user_path else default_user_presets_path()
    return _layer_cached(str(path), _mtime(path), str(user), _file_key(user))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _file_key(path: Path) -> tuple:
    # Size and inode too: two saves inside one timestamp tick still differ (each save replaces the file).
    try:
        stat = path.stat()
    except OSError:
        return ()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


@lru_cache(maxsize=8)
def _layer_cached(path: str, mtime: float, user_path: str, key: tuple) -> Presets:
    from dataclasses import replace

    base = _load_cached(path, mtime)
    if not key:
        return replace(base, user_path=user_path)
    try:
        user_styles = parse_user_styles(read_json_file(user_path, "user presets file"), user_path, base.schedulers)
    except PresetError as exc:
        return replace(base, user_path=user_path, user_error=f"{exc} (user styles not loaded; the built-in presets "
                                                            "are in use)")
    return replace(base, styles={**base.styles, **user_styles}, user_path=user_path, user_styles=tuple(user_styles))


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_key: float) -> Presets:
    return parse_presets(read_json_file(path, "presets file"), path)
