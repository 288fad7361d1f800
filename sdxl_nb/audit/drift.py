"""Drift audits: records made in another environment (re-runs may differ) and presets edited since."""

from __future__ import annotations

import platform
import re
from importlib import metadata

import pandas as pd

from sdxl_nb.analysis.sources import LoggedRecord
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.trusted_folders import in_model_folders

# What can change pixels: library versions, the GPU and its CUDA, precision, the attention kernel,
# deterministic algorithms, the device type itself, and on the CPU the number of threads.
DRIFT_KEYS = ("torch", "diffusers", "transformers", "cuda", "gpu", "dtype", "attention", "deterministic", "device",
              "cpu_threads")
# A ComfyUI job ran on its server: what can change its pixels there is the server's ComfyUI, torch, Python and GPU,
# as its record holds them (the server's /system_stats at the time), never this machine's diffusers.
COMFY_DRIFT_KEYS = ("comfyui", "torch", "python", "gpu")
LATER_KEYS = frozenset({"cpu_threads"})  # added to records later: an older record without it is not drift
MAY_DIFFER = "re-run may not be bit-exact"
ENV_COLUMNS = ["job_id", "log", "line", "changed", "differences", "message"]
PRESET_COLUMNS = ["kind", "name", "recorded", "current", "jobs", "example_job_id", "message"]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _torch_version() -> str | None:
    """torch.__version__ as records hold it ("2.14.1+cu130"), read from torch/version.py without importing torch.

    The wheel's metadata version drops the build label ("2.14.1"), which would read as drift on every record.
    """
    try:
        text = metadata.distribution("torch").locate_file("torch/version.py").read_text(encoding="utf-8")
    except (metadata.PackageNotFoundError, OSError):
        return _version("torch")
    found = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", text, re.M)
    return found.group(1) if found else _version("torch")


def installed_environment() -> dict:
    """What can be known without importing torch: the installed library versions.

    The GPU, dtype, attention and device need the engine (`Engine.environment()` plus the device
    type); audits given only this compare versions and say so.
    """
    return {"python": platform.python_version(), "torch": _torch_version(), "diffusers": _version("diffusers"),
            "transformers": _version("transformers")}


def engine_environment(engine) -> dict:
    """The full current environment of a loaded engine (imports nothing itself)."""
    return {**engine.environment(), "device": engine.device_record()["type"]}


def recorded_environment(record: dict) -> dict | None:
    env = record.get("env")
    if not isinstance(env, dict):
        return None
    device = record.get("device")
    device_type = device.get("type") if isinstance(device, dict) else device
    return {**env, "device": device_type}


def comfy_server(record: dict) -> str | None:
    """The ComfyUI server a job ran on (its record's backend), or None for a job of this machine's engine."""
    backend = record.get("backend")
    if isinstance(backend, dict) and backend.get("name") == "comfy":
        return str(backend.get("server"))
    return None


def differences(record: dict, current: dict) -> list[tuple[str, object, object]]:
    """(key, recorded, current) for each drift key the current environment knows and the record differs in. A
    ComfyUI job is compared on its server's keys (COMFY_DRIFT_KEYS): `current` must then be that server's
    environment (ComfyBackend.environment()), never this machine's."""
    recorded = recorded_environment(record)
    if recorded is None:
        return [("env", None, "(not recorded)")]
    keys = COMFY_DRIFT_KEYS if comfy_server(record) else DRIFT_KEYS
    return [(key, recorded.get(key), current[key]) for key in keys
            if key in current and recorded.get(key) != current[key] and (key in recorded or key not in LATER_KEYS)]


def describe(changes: list[tuple[str, object, object]]) -> str:
    if changes and changes[0][0] == "env":
        return "no environment recorded"
    return "; ".join(f"{key} {recorded if recorded is not None else '(none)'} -> "
                     f"{now if now is not None else '(none)'}" for key, recorded, now in changes)


def environment_drift(records: list[LoggedRecord], current: dict | None = None,
                      servers: dict[str, dict] | None = None) -> pd.DataFrame:
    """Records whose environment differs from `current` (default: the installed versions only). A ComfyUI job is
    compared with its server's environment in `servers` (server URL -> ComfyBackend.environment()) and left out
    when that is not known: this machine's libraries did not make it."""
    current = installed_environment() if current is None else current
    rows = []
    for logged in records:
        server = comfy_server(logged.record)
        if server is not None and server not in (servers or {}):
            continue
        changes = differences(logged.record, servers[server] if server is not None else current)
        if changes:
            rows.append((logged.record.get("job_id"), str(logged.log), logged.line,
                         ", ".join(key for key, _r, _c in changes), describe(changes), MAY_DIFFER))
    return pd.DataFrame(rows, columns=ENV_COLUMNS)


def _scheduler_drift(record: dict, presets: Presets) -> tuple[str, str, str] | None:
    """(name, recorded, current) when the scheduler preset of that name no longer gives what ran."""
    scheduler = record.get("scheduler")
    if not isinstance(scheduler, dict) or not isinstance(scheduler.get("name"), str):
        return None
    name, recorded_class = scheduler["name"], scheduler.get("class")
    preset = presets.schedulers.get(name)
    if preset is None:
        return name, str(recorded_class), "(no such preset now)"
    if preset.cls is not None and preset.cls != recorded_class:
        return name, str(recorded_class), preset.cls
    config = scheduler.get("config") if isinstance(scheduler.get("config"), dict) else {}
    changed = sorted(key for key, value in preset.kwargs.items() if key in config and config[key] != value)
    if changed:
        return (name, ", ".join(f"{key}={config[key]!r}" for key in changed),
                ", ".join(f"{key}={preset.kwargs[key]!r}" for key in changed))
    return None


def preset_drift(records: list[LoggedRecord], presets: Presets | None = None) -> pd.DataFrame:
    """Styles whose content hash changed (or that were removed) since jobs used them, and scheduler
    presets that now name another class or settings. Re-runs are unaffected (they use the recorded
    styled prompt and scheduler config); a new job with the same names would differ."""
    presets = presets or load_presets()
    found: dict[tuple, list] = {}
    for logged in records:
        style = logged.record.get("style")
        if isinstance(style, dict) and isinstance(style.get("name"), str):
            preset = presets.styles.get(style["name"])
            current = preset.content_hash if preset else "(no such style now)"
            if style.get("hash") is not None and style.get("hash") != current:
                found.setdefault(("style", style["name"], str(style.get("hash")), current), []).append(logged)
        scheduler = _scheduler_drift(logged.record, presets)
        if scheduler:
            found.setdefault(("scheduler", *scheduler), []).append(logged)
    rows = []
    for (kind, name, recorded, current), jobs in found.items():
        what = "was removed" if current.startswith("(no such") else "changed"
        rows.append((kind, name, recorded, current, len(jobs), jobs[0].record.get("job_id"),
                     f"{kind} preset {name!r} {what} since {len(jobs)} job(s) used it; the records keep what ran"))
    return pd.DataFrame(rows, columns=PRESET_COLUMNS)


FILE_COLUMNS = ["kind", "name", "path", "recorded", "current", "jobs", "example_job_id", "message"]
OUTSIDE_CURRENT = "(outside your model folders)"


def _upscaler_files(record: dict) -> list[dict]:
    """The upscaler model file a hires or upscale job used ({name, path, sha256}), if any."""
    settings = record.get("hires") or record.get("upscale")
    upscaler = settings.get("upscaler") if isinstance(settings, dict) else None
    return [upscaler] if isinstance(upscaler, dict) and upscaler.get("kind") == "model" else []


def _controlnet_drift(record: dict) -> list[tuple[str, str, str, str]]:
    """(name, path, recorded sha256, current) of each ControlNet whose weights changed or are gone (the embedded one
    is rebuilt byte for byte when gone, so only a change counts for it)."""
    from pathlib import Path

    from sdxl_nb.config.controlnets import ControlNetFile
    from sdxl_nb.errors import InputError

    drifted = []
    units = record.get("controlnets")
    for unit in units if isinstance(units, list) else []:
        model = unit.get("model") if isinstance(unit, dict) else None
        if not (isinstance(model, dict) and isinstance(model.get("path"), str)):
            continue
        weights = ControlNetFile(str(model.get("name")), model["path"], str(model.get("source") or ""))
        if not Path(model["path"]).exists():
            current = None if weights.source == "embedded" else "(missing)"
        elif not in_model_folders(model["path"], "controlnet"):
            current = OUTSIDE_CURRENT  # never opened: not a file of the user's ControlNet folders
        else:
            try:
                current = (weights.content_hash() if in_model_folders(weights.weights_file(), "controlnet")
                           else OUTSIDE_CURRENT)
            except (InputError, OSError):
                current = "(missing)"
        if current is not None and current != model.get("sha256"):
            drifted.append((weights.name, model["path"], str(model.get("sha256")), current))
    return drifted



def file_drift(records: list[LoggedRecord]) -> pd.DataFrame:
    """LoRA, embedding, upscaler and ControlNet files changed (or gone) since jobs used them: a re-run would not use
    what ran."""
    from pathlib import Path

    from sdxl_nb.config.loras import file_sha256

    found: dict[tuple, list] = {}
    for logged in records:
        for kind, key in (("LoRA", "loras"), ("embedding", "embeddings"), ("upscaler", None)):
            entries = logged.record.get(key) if key else _upscaler_files(logged.record)
            for entry in entries if isinstance(entries, list) else []:
                if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)):
                    continue
                path = Path(entry["path"])
                if not in_model_folders(path, kind.lower()):
                    current = OUTSIDE_CURRENT  # never opened: a received record may name any file
                else:
                    current = file_sha256(path) if path.is_file() else "(missing)"
                if current != entry.get("sha256"):
                    found.setdefault((kind, str(entry.get("name")), str(path), str(entry.get("sha256")), current),
                                     []).append(logged)
        for name, path, recorded, current in _controlnet_drift(logged.record):
            found.setdefault(("ControlNet", name, path, recorded, current), []).append(logged)
    rows = []
    for (kind, name, path, recorded, current), jobs in found.items():
        if current == OUTSIDE_CURRENT:
            rows.append((kind, name, path, recorded[:12], current, len(jobs), jobs[0].record.get("job_id"),
                         f"{kind} {name!r} ({path}) lies outside your model folders (not read); its {len(jobs)} "
                         "job(s) are not re-run here"))
            continue
        what = "is missing" if current == "(missing)" else "changed"
        rows.append((kind, name, path, recorded[:12], current[:12], len(jobs), jobs[0].record.get("job_id"),
                     f"{kind} {name!r} ({path}) {what} since {len(jobs)} job(s) used it; their re-runs cannot be "
                     "bit-exact"))
    return pd.DataFrame(rows, columns=FILE_COLUMNS)
