"""Re-run an animation from its jobs.log record alone: every finished frame, with the same calls, seeds and t."""

from __future__ import annotations

import os
from pathlib import Path

from sdxl_nb.errors import InputError, ModelUnavailableError
from sdxl_nb.jobs.animate.spec import FramesJob, FrameSpec
from sdxl_nb.record.store import sha256_file


def frames_job_from_record(record: dict) -> FramesJob:
    """The frame runner's job, rebuilt from the record (its recorded scheduler config, not today's presets)."""
    if record.get("mode") != "animate" or not isinstance(record.get("animation"), dict):
        raise InputError(f"job {record.get('job_id')} is not an animate record (mode {record.get('mode')!r})")
    frames = sorted(record.get("frames") or [], key=lambda frame: frame["index"])
    if not frames:
        raise InputError(f"job {record['job_id']} has no finished frames to re-run")
    specs = tuple(FrameSpec(index=f["index"], seed=f["seed"], styled_prompt=f["styled_prompt"],
                            seed_end=f.get("seed_end"), styled_prompt_end=f.get("styled_prompt_end"), t=f.get("t"))
                  for f in frames)
    # Frames batched together are repeated together: batching can move a pixel's last bit.
    calls: dict[int, list[int]] = {}
    for position, frame in enumerate(frames):
        calls.setdefault(frame["call"], []).append(position)
    init = record.get("init_image")
    if init is not None:
        if not Path(init["path"]).is_file():
            raise InputError(f"init image {init['path']!r} of job {record['job_id']} no longer exists")
        if sha256_file(init["path"]) != init["sha256"]:
            raise InputError(f"init image {init['path']!r} changed since job {record['job_id']} ran (sha256 differs)")
    scheduler = record["scheduler"]
    return FramesJob(source=record["animation"]["source"], frames=specs, negative=record["effective_negative_prompt"],
                     steps=record["steps"], cfg=record["cfg"], width=record["width"], height=record["height"],
                     strength=record["strength"], init_image=None if init is None else init["path"],
                     scheduler_class=scheduler["class"], scheduler_config=scheduler["config"],
                     calls=tuple(tuple(positions) for _call, positions in sorted(calls.items())))


def rerun_frames(record: dict, engine=None) -> list:
    """Regenerate every finished frame of an animate record, in frame order (PIL images).

    Bit-exact on the CPU in float32; the caller compares the model revision and device it got with
    the record's (`record["model"]["revision"]`) when judging a difference.
    """
    job = frames_job_from_record(record)
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    info = find_model(record["model"]["id"], load_presets())
    if not info.available:
        raise ModelUnavailableError(info.reason)
    if engine is None:
        from sdxl_nb.backends.local import get_engine

        engine = get_engine()
    from sdxl_nb.backends.local.frames import run_frames

    output = run_frames(engine, engine.load(info), job)
    return [image for _index, image in output.images]


def check_rerun(record: dict, folder: str | os.PathLike, engine=None) -> list[dict]:
    """Re-run the frames and compare pixels with the saved PNGs: [{index, path, identical, max_diff}]."""
    import numpy as np
    from PIL import Image

    images = rerun_frames(record, engine=engine)
    results = []
    for frame, image in zip(sorted(record["frames"], key=lambda f: f["index"]), images, strict=True):
        with Image.open(Path(folder) / frame["path"]) as saved:
            old = np.asarray(saved.convert("RGB"), dtype=np.int16)
        new = np.asarray(image.convert("RGB"), dtype=np.int16)
        max_diff = int(np.abs(old - new).max()) if old.shape == new.shape else None
        results.append({"index": frame["index"], "path": frame["path"], "identical": max_diff == 0,
                        "max_diff": max_diff})
    return results
