"""A received record whose LoRA, embedding, upscaler, ControlNet or IP-Adapter lies outside the user's folders (a
colleague's path) re-runs with the user's own file of the same name and sha256, noted "found in your folders";
without such a file (or with only a link leading out) it is "not re-run (file outside your model folders)"."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs
from sdxl_nb.config.loras import demo_lora
from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora
from sdxl_nb.config.trusted_folders import OUTSIDE_MODEL_FOLDERS, NotTrusted


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def received(run, tmp_path, monkeypatch):
    """A colleague's folder with a LoRA job whose record names /elsewhere/x.safetensors; returns (folder, lora bytes)."""
    data = Path(demo_lora().path).read_bytes()
    colleague = tmp_path / "colleague-loras"
    colleague.mkdir()
    (colleague / "x.safetensors").write_bytes(data)
    monkeypatch.setenv("SDXL_NB_LORAS", str(colleague))
    folder = tmp_path / "received"
    run(prompt="a fox <lora:x:0.8>", out_dir=folder)
    log = folder / "jobs.log"
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    record["loras"][0]["path"] = "/elsewhere/x.safetensors"
    log.write_text(json.dumps(record) + "\n")
    shutil.rmtree(colleague)
    return folder, data


def rerun(folder, engine):
    records, _ = read_logged_records(folder)
    return rerun_jobs(records, engine)


def test_the_same_lora_in_the_users_folder_is_used_and_said(received, engine, tmp_path, monkeypatch):
    folder, data = received
    mine = tmp_path / "my-loras" / "sub"
    mine.mkdir(parents=True)
    (mine / "x.safetensors").write_bytes(data)
    monkeypatch.setenv("SDXL_NB_LORAS", str(mine.parent))
    table = rerun(folder, engine)
    assert table["verdict"].tolist() == [BIT_EXACT], table["note"].tolist()
    assert f"found in your folders: {(mine / 'x.safetensors').resolve()}" in table["note"][0]
    assert "/elsewhere/x.safetensors" in table["note"][0]


def test_a_different_file_or_a_link_leading_out_is_not_used(received, engine, tmp_path, monkeypatch):
    folder, data = received
    mine = tmp_path / "my-loras"
    mine.mkdir()
    write_lora(mine / "x.safetensors", tiny_embedding_tensors(2, seed=3))  # same name, other content
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "x.safetensors").write_bytes(data)
    (mine / "linked").mkdir()
    (mine / "linked" / "x.safetensors").symlink_to(stranger / "x.safetensors")  # same bytes, but outside
    monkeypatch.setenv("SDXL_NB_LORAS", str(mine))
    table = rerun(folder, engine)
    assert table["verdict"].tolist() == [OUTSIDE_MODEL_FOLDERS]
    assert "/elsewhere/x.safetensors" in table["note"][0]


def test_embedding_upscaler_and_controlnet_are_found_by_name_and_sha256(tmp_path, monkeypatch):
    from sdxl_nb.audit.replay_guides import _trusted_controlnet
    from sdxl_nb.audit.replay_request import recorded_embeddings, trusted_upscaler

    elsewhere, mine = tmp_path / "elsewhere", tmp_path / "mine"
    files = {"mystyle.safetensors": tiny_embedding_tensors(2, seed=1),
             "sharp.safetensors": {"w": np.zeros(4, np.float32)}, "edges.safetensors": {"w": np.ones(4, np.float32)}}
    for root in (elsewhere, mine):
        for name, tensors in files.items():
            write_lora(root / name.split(".")[0] / name, tensors)
    for variable, name in (("SDXL_NB_EMBEDDINGS", "mystyle"), ("SDXL_NB_UPSCALERS", "sharp"),
                           ("SDXL_NB_CONTROLNETS", "edges")):
        monkeypatch.setenv(variable, str(mine / name))
    theirs = {name: elsewhere / name.split(".")[0] / name for name in files}
    (use,) = recorded_embeddings({"embeddings": [{"name": "mystyle", "path": str(theirs["mystyle.safetensors"]),
                                                  "sha256": sha(theirs["mystyle.safetensors"]), "vectors": 2}]})
    assert use.path == str((mine / "mystyle" / "mystyle.safetensors").resolve())
    entry = trusted_upscaler({"kind": "model", "name": "sharp", "path": str(theirs["sharp.safetensors"]),
                              "sha256": sha(theirs["sharp.safetensors"])})
    assert entry["path"] == str((mine / "sharp" / "sharp.safetensors").resolve())
    image = tmp_path / "out" / "inputs" / "c.png"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(image)
    unit = _trusted_controlnet({"model": {"name": "edges", "path": str(theirs["edges.safetensors"]),
                                          "sha256": sha(theirs["edges.safetensors"])},
                                "image": {"path": "inputs/c.png"}}, 0, tmp_path / "out")
    assert unit["model"]["path"] == str((mine / "edges" / "edges.safetensors").resolve())
    with pytest.raises(NotTrusted):  # the same name with another sha256 is no copy
        trusted_upscaler({"kind": "model", "name": "sharp", "path": str(theirs["sharp.safetensors"]), "sha256": "0" * 64})


def test_an_ip_adapter_is_found_with_its_encoder_in_the_recorded_layout(tmp_path, monkeypatch):
    from sdxl_nb.audit.replay_guides import recorded_ip_adapter
    from sdxl_nb.config.ip_adapters import demo_ip_adapters, find_ip_adapter, ip_adapter_use
    from sdxl_nb.request.resolve import InputImage

    adapter = find_ip_adapter(demo_ip_adapters()[0].name)
    folder = tmp_path / "out"
    image = folder / "inputs" / "r.png"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(image)
    entry = ip_adapter_use(adapter.name, (InputImage(str(image), sha(image), (8, 8)),), 0.5).record()
    root = Path(entry["root"])
    for copy in ("elsewhere", "mine"):
        shutil.copytree(root, tmp_path / copy / root.name)
    theirs = str(tmp_path / "elsewhere" / root.name)
    moved = {**entry, "path": entry["path"].replace(str(root), theirs), "root": theirs,
             "image_encoder": {**entry["image_encoder"],
                               "path": entry["image_encoder"]["path"].replace(str(root), theirs)}}
    monkeypatch.setenv("SDXL_NB_IP_ADAPTERS", str(tmp_path / "mine"))
    record = {"ip_adapter": moved, "ip_images": [{"path": "inputs/r.png", "sha256": sha(image)}]}
    use = recorded_ip_adapter(record, folder)
    assert use.root == str((tmp_path / "mine" / root.name).resolve()) and use.sha256 == entry["sha256"]
    monkeypatch.setenv("SDXL_NB_IP_ADAPTERS", str(tmp_path / "empty"))
    with pytest.raises(NotTrusted):
        recorded_ip_adapter(record, folder)

