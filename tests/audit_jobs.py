"""A small real output folder for the analysis and audit tests: txt2img, img2img and inpaint jobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import SMALL


def make_jobs(folder: Path, engine) -> list:
    """Three real jobs on the tiny model (inputs kept in folder/inputs, as the lab keeps them)."""
    from sdxl_nb.jobs.generate import generate

    inputs = folder / "inputs"
    inputs.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(inputs / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(inputs / "mask.png")
    common = dict(out_dir=folder, engine=engine, **SMALL)
    return [
        generate(prompt="a red fox", style="Cinematic", scheduler="Euler", batch=2, seed=1, **common),
        generate(prompt="a fox in img2img", scheduler="DPM++ 2M Karras", init_image=str(inputs / "init.png"),
                 strength=0.6, seed=2, **{**common, "steps": 4}),
        generate(prompt="a fox inpainted", init_image=str(inputs / "init.png"), mask_image=str(inputs / "mask.png"),
                 seed=3, **{**common, "steps": 4}),
    ]


def copy_jobs(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def rewrite_log(folder: Path, edit) -> list[dict]:
    """Apply edit(record) -> record to every line of folder/jobs.log (how tests fake old or altered records)."""
    log = folder / "jobs.log"
    records = [edit(json.loads(line)) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    log.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records
