"""Animate jobs get the same input warnings as image jobs (request.preflight.input_warnings): a model file name that
several files share is said in the animation's record."""

import os
from pathlib import Path

from sdxl_nb.config.loras import demo_lora
from sdxl_nb.jobs.animate import animate
from tests.conftest import SMALL


def test_an_animation_using_a_shared_lora_name_is_warned(engine, tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "twin.safetensors").write_bytes(Path(demo_lora().path).read_bytes())
    monkeypatch.setenv("SDXL_NB_LORAS", f"{first}{os.pathsep}{second}")
    result = animate(out_dir=tmp_path / "out", engine=engine, frames=2, seed=1,
                     **{**SMALL, "prompt": "a fox <lora:twin:0.5>"})
    warning = next(w for w in result.record["warnings"] if "LoRA name 'twin'" in w)
    assert f"{first / 'twin.safetensors'} is used" in warning and str(second / "twin.safetensors") in warning
