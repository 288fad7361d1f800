"""Re-run an animation from its jobs.log record alone: every finished frame, with the same calls, seeds and t."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from sdxl_nb.backends.base import ImageSpec, RunPlan, recorded_calls
from sdxl_nb.errors import InputError, ModelUnavailableError


def plan_from_record(record: dict, folder: str | os.PathLike | None = None) -> RunPlan:
    """The frames' run plan, rebuilt from the record (its recorded scheduler config, not today's presets)."""
    from sdxl_nb.audit.replay_request import ReplayError, request_from_record

    if record.get("mode") != "animate" or not isinstance(record.get("animation"), dict):
        raise InputError(f"job {record.get('job_id')} is not an animate record (mode {record.get('mode')!r})")
    frames = sorted(record.get("frames") or [], key=lambda frame: frame["index"])
    if not frames:
        raise InputError(f"job {record['job_id']} has no finished frames to re-run")
    try:
        resolved = request_from_record({**record, "mode": record["animation"]["source"]},
                                       Path(folder) if folder is not None else Path("."))
    except ReplayError as exc:
        raise InputError(f"job {record['job_id']}: {exc}") from None
    specs = tuple(ImageSpec(index=f["index"], seed=f["seed"], prompt=f["styled_prompt"], seed_end=f.get("seed_end"),
                            prompt_end=f.get("styled_prompt_end"), t=f.get("t")) for f in frames)
    return RunPlan(request=replace(resolved, batch=len(specs)), images=specs, calls=recorded_calls(frames))


def rerun_frames(record: dict, engine=None, folder: str | os.PathLike | None = None) -> list:
    """Regenerate every finished frame of an animate record, in frame order (PIL images).

    Bit-exact on the CPU in float32; the caller compares the model revision and device it got with
    the record's (`record["model"]["revision"]`) when judging a difference.
    """
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import recorded_model

    plan = plan_from_record(record, folder)
    info, _notes = recorded_model(record["model"], load_presets())  # a checkpoint: the recorded file
    if not info.available:
        raise ModelUnavailableError(info.reason)
    if engine is None:
        from sdxl_nb.backends.local import get_engine

        engine = get_engine()
    output = engine.run(plan, engine.load(info))
    return [image for _index, _seed, image in sorted(output.images, key=lambda item: item[0])]


def check_rerun(record: dict, folder: str | os.PathLike, engine=None) -> list[dict]:
    """Re-run the frames and compare pixels with the saved PNGs: [{index, path, identical, max_diff}]."""
    import numpy as np
    from PIL import Image

    images = rerun_frames(record, engine=engine, folder=folder)
    results = []
    for frame, image in zip(sorted(record["frames"], key=lambda f: f["index"]), images, strict=True):
        with Image.open(Path(folder) / frame["path"]) as saved:
            old = np.asarray(saved.convert("RGB"), dtype=np.int16)
        new = np.asarray(image.convert("RGB"), dtype=np.int16)
        max_diff = int(np.abs(old - new).max()) if old.shape == new.shape else None
        results.append({"index": frame["index"], "path": frame["path"], "identical": max_diff == 0,
                        "max_diff": max_diff})
    return results
