"""Re-runs a recorded txt2img/img2img/inpaint job from its record alone (the engine side of re-run audits)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import diffusers
from PIL import Image

from sdxl_nb.audit.replay_request import ReplayError, check_recorded_checkpoint, request_from_record
from sdxl_nb.backends.base import RunHooks, RunPlan, recorded_calls
from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.registry import recorded_model as model_of_record
from sdxl_nb.config.trusted_folders import FOUND_IN_YOUR_FOLDERS
from sdxl_nb.errors import InputError


@dataclass
class Replay:
    images: dict[int, Image.Image]  # batch index -> regenerated image
    scheduler: dict  # the scheduler record of the re-run (class and full config)
    revision: str  # the model revision that ran now
    notes: list[str] = field(default_factory=list)  # where the re-run could not match the record exactly


def _config_differences(recorded: dict, now: dict) -> list[str]:
    return sorted(key for key in set(recorded) | set(now) if recorded.get(key) != now.get(key))


def replay_plan(record: dict, resolved) -> RunPlan:
    """The recorded pipeline calls of the saved images when the record has them, else its chunk size.

    A failed job's calls may also have held images it did not save (NaN, a lost replica), which the saved
    images alone cannot say: it re-runs the whole batch by chunk size, as one engine would have run it.
    """
    failed = record.get("status") == "failed"
    images = [] if failed else [entry for entry in record.get("images") or [] if isinstance(entry, dict)]
    calls = recorded_calls(images) if images else None
    if calls is None:
        chunk_size = record.get("chunk_size") if isinstance(record.get("chunk_size"), int) else resolved.batch
        return RunPlan.for_request(resolved, chunk_size=chunk_size)
    plan = RunPlan.for_request(resolved, indices=sorted(entry["index"] for entry in images))
    return replace(plan, calls=calls)


def _refiner_notes(record: dict, resolved, presets: Presets, engine) -> list[str]:
    """Refuse a refiner that is not available here; note one whose revision changed since the job."""
    from sdxl_nb.config.refiners import model_revision, refiner_info
    from sdxl_nb.errors import ModelUnavailableError

    try:
        info = refiner_info(resolved, presets, local=engine.capabilities.local_models)
    except ModelUnavailableError as exc:
        raise ReplayError(str(exc)) from None
    recorded = (record.get("refiner") or {}).get("revision")
    if info is None or not recorded:
        return []
    revision = model_revision(info)
    if revision == recorded:
        return []
    if info.source == "checkpoint":  # a single file: its bytes are the refiner (noted as for a base checkpoint)
        return [f"refiner checkpoint {info.path} changed since the job (sha256 {str(revision)[:12]}..., recorded "
                f"{recorded[:12]}...)"]
    return [f"refiner revision {revision} differs from the recorded {recorded}"]


def replay(record: dict, folder: str | Path, engine, presets: Presets | None = None, on_progress=None) -> Replay:
    """Regenerate a record's images with its own scheduler config, prompts, seeds and pipeline calls.

    Raises ReplayError (one line) when the record cannot be re-run here: an unknown scheduler
    class, a model not in the local cache, an init/mask image gone or changed.
    """
    presets = presets or load_presets()
    resolved = request_from_record(record, folder, presets)
    if engine.capabilities.scheduler_config and not hasattr(diffusers, resolved.scheduler.cls):
        raise ReplayError(f"scheduler class {resolved.scheduler.cls!r} is not in this diffusers "
                          f"({diffusers.__version__})")
    recorded = record.get("model") if isinstance(record.get("model"), dict) else {"id": resolved.model.id}
    check_recorded_checkpoint(recorded)
    try:
        info, notes = model_of_record({**recorded, "id": resolved.model.id}, presets)
    except InputError as exc:
        raise ReplayError(f"model {resolved.model.id!r} is not known here ({exc})") from None
    if engine.capabilities.local_models and not info.available:
        raise ReplayError(info.reason)
    loaded = engine.load(info)
    recorded_model = record.get("model") if isinstance(record.get("model"), dict) else {}
    if recorded_model.get("revision") and recorded_model["revision"] != loaded.revision and not notes:
        notes.append(f"model revision {loaded.revision} differs from the recorded {recorded_model['revision']}")
    if recorded_model.get("vae") != loaded.vae and "vae" in recorded_model:
        notes.append(f"VAE {loaded.vae} differs from the recorded {recorded_model.get('vae')}")
    notes += _refiner_notes(record, resolved, presets, engine)
    notes += [note for note in resolved.notes if FOUND_IN_YOUR_FOLDERS in note]  # a file used from the user's folders
    output = engine.run(replay_plan(record, resolved), loaded, RunHooks(on_progress=on_progress))
    recorded_config = (record.get("scheduler") or {}).get("config")
    if isinstance(recorded_config, dict):
        changed = _config_differences(recorded_config, output.scheduler["config"])
        if changed:
            notes.append(f"scheduler config differs from the record in {', '.join(changed[:6])}"
                         + (f" and {len(changed) - 6} more" if len(changed) > 6 else ""))
    return Replay(images={index: image for index, _seed, image in output.images}, scheduler=output.scheduler,
                  revision=loaded.revision, notes=notes)
