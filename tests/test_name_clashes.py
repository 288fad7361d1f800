"""Two model files with one name: the first found is used and that is said (listing and the job's warnings);
an embedding named like a common prompt word (or BREAK) is refused as an embedding name, never substituted."""

import os
from pathlib import Path

import pytest
from PIL import Image

from sdxl_nb.config.loras import demo_lora
from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora


@pytest.fixture
def twin_loras(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "twin.safetensors").write_bytes(Path(demo_lora().path).read_bytes())
    monkeypatch.setenv("SDXL_NB_LORAS", f"{first}{os.pathsep}{second}")
    return first / "twin.safetensors", second / "twin.safetensors"


def test_a_lora_clash_is_listed_and_warned_in_the_job_record(twin_loras, run, tmp_path):
    from sdxl_nb.jobs.networks import lora_listing

    used, other = twin_loras
    rows = [row for row in lora_listing(fits=False) if row["name"] == "twin"]
    assert len(rows) == 1 and rows[0]["path"] == str(used) and rows[0]["usable"]
    assert str(used) in rows[0]["clash"] and str(other) in rows[0]["clash"] and "is used" in rows[0]["clash"]
    result = run(prompt="a fox <lora:twin:0.5>", out_dir=tmp_path / "job")
    assert result.record["loras"][0]["path"] == str(used)
    warning = next(w for w in result.record["warnings"] if "LoRA name 'twin'" in w)
    assert f"{used} is used" in warning and str(other) in warning
    plain = run(prompt="a fox", out_dir=tmp_path / "plain")  # a job that does not use the name is not warned
    assert not any("twin" in w for w in plain.record["warnings"])


def test_embedding_upscaler_and_controlnet_clashes_are_said(tmp_path, monkeypatch):
    from sdxl_nb.config.upscalers import list_upscalers
    from sdxl_nb.jobs.control_listing import controlnet_listing
    from sdxl_nb.jobs.networks import embedding_listing
    from sdxl_nb.request.preflight import preflight
    from sdxl_nb.request.resolve import GenerationRequest

    embeddings = [tmp_path / "e1", tmp_path / "e2"]
    for folder in embeddings:
        write_lora(folder / "mystyle.safetensors", tiny_embedding_tensors(2, seed=1))
    upscalers = tmp_path / "up"
    upscalers.mkdir()
    write_lora(upscalers / "sharp.safetensors", {"w": tiny_embedding_tensors(1)["clip_l"]})
    for name in ("sharp.pth", "Lanczos.pth"):
        (upscalers / name).write_bytes(b"not loaded by a listing")
    controlnets = tmp_path / "cn"
    write_lora(controlnets / "tiny-sdxl-controlnet.safetensors", {"w": tiny_embedding_tensors(1)["clip_l"]})
    monkeypatch.setenv("SDXL_NB_EMBEDDINGS", os.pathsep.join(map(str, embeddings)))
    monkeypatch.setenv("SDXL_NB_UPSCALERS", str(upscalers))
    monkeypatch.setenv("SDXL_NB_CONTROLNETS", str(controlnets))

    row = next(row for row in embedding_listing() if row["name"] == "mystyle")
    assert row["usable"] and f"{embeddings[0] / 'mystyle.safetensors'} is used" in row["clash"]
    assert str(embeddings[1] / "mystyle.safetensors") in row["clash"]
    rows = {row["name"]: row for row in list_upscalers()}
    assert rows["sharp"]["path"] == str(upscalers / "sharp.pth")  # sorted: .pth before .safetensors, first wins
    assert str(upscalers / "sharp.safetensors") in rows["sharp"]["clash"]
    assert rows["Lanczos"]["kind"] == "pixel" and str(upscalers / "Lanczos.pth") in rows["Lanczos"]["clash"]
    assert "the built-in 'Lanczos' is used" in rows["Lanczos"]["clash"]
    row = next(row for row in controlnet_listing() if row["name"] == "tiny-sdxl-controlnet")
    assert row["source"] == "embedded" and str(controlnets / "tiny-sdxl-controlnet.safetensors") in row["clash"]

    image = tmp_path / "control.png"
    Image.new("RGB", (64, 64), "white").save(image)
    check = preflight(GenerationRequest(prompt="a fox, mystyle", model="tiny-sdxl", width=64, height=64, steps=2,
                                        hires_scale=2, hires_upscaler="Lanczos",
                                        controlnets=[{"model": "tiny-sdxl-controlnet", "image": str(image)}]))
    said = " | ".join(check.warnings)
    assert "embedding name 'mystyle'" in said and "ControlNet name 'tiny-sdxl-controlnet'" in said
    assert "upscaler name 'Lanczos' is shared by 2 files: the built-in 'Lanczos' is used" in said


@pytest.mark.parametrize("name", ["a", "BREAK", "the", "And", "of", "with", "1.2", "x:y", "(sharp)"])
def test_a_prompt_word_is_refused_as_an_embedding_name(name, tmp_path, monkeypatch):
    from sdxl_nb.config.embeddings import embeddings_for, names_in
    from sdxl_nb.jobs.networks import embedding_listing

    write_lora(tmp_path / f"{name}.safetensors", tiny_embedding_tensors(2, seed=1))
    write_lora(tmp_path / "mystyle.safetensors", tiny_embedding_tensors(2, seed=2))
    monkeypatch.setenv("SDXL_NB_EMBEDDINGS", str(tmp_path))
    rows = {row["name"]: row for row in embedding_listing()}
    assert rows[name]["usable"] is False and "rename the file" in rows[name]["problem"]
    assert rows["mystyle"]["usable"]
    prompt = f"a fox with (sharp:1.2) {name} of the night BREAK And snow, mystyle"
    assert names_in(prompt, [name]) == []
    assert [use.name for use in embeddings_for(prompt)] == ["mystyle"]


def test_a_job_keeps_the_word_a_and_break(run, tmp_path, monkeypatch):
    folder = tmp_path / "emb"
    for name in ("a", "BREAK"):
        write_lora(folder / f"{name}.safetensors", tiny_embedding_tensors(2, seed=1))
    monkeypatch.setenv("SDXL_NB_EMBEDDINGS", str(folder))
    result = run(prompt="a fox BREAK a hill", out_dir=tmp_path / "job")
    assert result.record["embeddings"] in ([], None) and result.record["prompt"] == "a fox BREAK a hill"
