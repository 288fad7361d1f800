"""Every job keeps its input images in its folder's inputs/<sha256>.<ext> and records that path: a re-run of the
user's own job (API or CLI) with inputs outside the folder works, older records naming an absolute path inside the
folder still re-run, and refused input writes nothing."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs
from sdxl_nb.errors import InputError


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def noise(path: Path, seed: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (64, 64, 3) if mode == "RGB" else (64, 64)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8), mode).save(path)
    return path


def kept_entry(folder: Path, entry: dict, original: Path) -> None:
    """The record names the folder's own copy, relative to the folder, with the original's bytes."""
    assert entry["path"] == f"inputs/{sha(original)}{original.suffix}"
    assert (folder / entry["path"]).read_bytes() == original.read_bytes() and entry["sha256"] == sha(original)


def test_api_job_keeps_init_and_mask_outside_the_folder_and_reruns_bit_exactly(run, engine, tmp_path):
    elsewhere = tmp_path / "home" / "photos"
    init, mask = noise(elsewhere / "photo.png"), noise(elsewhere / "mask.png", 1, "L")
    folder = tmp_path / "out"
    result = run(prompt="a kept fox", init_image=str(init), mask_image=str(mask), strength=0.7, out_dir=folder)
    kept_entry(folder, result.record["init_image"], init)
    kept_entry(folder, result.record["mask_image"], mask)
    shutil.rmtree(elsewhere)  # the originals are gone: the folder carries what the re-run needs
    received = tmp_path / "received"
    shutil.copytree(folder, received)
    records, _ = read_logged_records(received)
    table = rerun_jobs(records, engine)
    assert table["verdict"].tolist() == [BIT_EXACT], table["note"].tolist()


def test_cli_job_with_an_outside_init_image_reruns_in_the_audit(kernel_engine, tmp_path, capsys):
    from sdxl_nb.cli import main

    init = noise(tmp_path / "desktop" / "photo.png", 3)
    folder = tmp_path / "out"
    assert main(["generate", "--prompt", "a cli fox", "--model", "tiny-sdxl", "--init-image", str(init), "--strength", "0.6",
                 "--width", "64", "--height", "64", "--steps", "2", "--seed", "5", "--out", str(folder)]) == 0
    (record,) = [json.loads(line) for line in (folder / "jobs.log").read_text().splitlines()]
    kept_entry(folder, record["init_image"], init)
    init.unlink()
    capsys.readouterr()
    assert main(["audit", str(folder), "--rerun", "all"]) == 0
    out = capsys.readouterr().out
    assert "not re-run" not in out and "bit-exact" in out


def test_an_older_record_naming_an_absolute_path_inside_the_folder_still_reruns(run, engine, tmp_path):
    folder = tmp_path / "out"
    init = noise(folder / "inputs" / "init.png", 4)
    run(prompt="an older fox", init_image=str(init), strength=0.6, out_dir=folder)
    log = folder / "jobs.log"
    (record,) = [json.loads(line) for line in log.read_text().splitlines()]
    record["init_image"]["path"] = str(init.resolve())  # as jobs recorded their inputs before they were kept
    log.write_text(json.dumps(record) + "\n")
    records, _ = read_logged_records(folder)
    assert rerun_jobs(records, engine)["verdict"].tolist() == [BIT_EXACT]


def test_control_and_ip_adapter_images_are_kept_too(run, tmp_path):
    elsewhere = tmp_path / "refs"
    control, reference = noise(elsewhere / "edges.png", 5), noise(elsewhere / "style.png", 6)
    folder = tmp_path / "out"
    result = run(prompt="a guided fox", out_dir=folder, controlnets=[{"model": "tiny-sdxl-controlnet",
                                                                      "image": str(control)}])
    kept_entry(folder, result.record["controlnets"][0]["image"], control)
    try:
        result = run(prompt="a referenced fox", out_dir=folder, ip_adapter="tiny-sdxl-ip-adapter",
                     ip_images=[str(reference)])
    except InputError as exc:  # no demo IP-Adapter in this installation
        pytest.skip(str(exc))
    kept_entry(folder, result.record["ip_images"][0], reference)


def test_refused_input_writes_nothing_and_an_upload_is_kept_once(run, tmp_path):
    init = noise(tmp_path / "photo.png", 7)
    folder = tmp_path / "out"
    with pytest.raises(InputError):
        run(prompt="a fox", init_image=str(init), strength=0.6, hires_scale=2, hires_upscaler="no-such", out_dir=folder)
    assert not folder.exists()
    from sdxl_nb.request.form import save_upload

    uploaded = save_upload(init.read_bytes(), folder, "init image")  # the lab keeps an upload before the job runs
    result = run(prompt="a fox", init_image=str(uploaded), strength=0.6, out_dir=folder)
    assert result.record["init_image"]["path"] == f"inputs/{uploaded.name}"
    assert sorted(p.name for p in (folder / "inputs").iterdir() if not p.name.startswith(".")) == [uploaded.name]


def test_an_input_in_a_format_uploads_refuse_is_kept_under_its_own_extension(run, tmp_path):
    init = tmp_path / "photo.ppm"
    Image.fromarray(np.random.default_rng(8).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    result = run(prompt="a fox", init_image=str(init), strength=0.6, out_dir=tmp_path / "out")
    assert result.record["init_image"]["path"] == f"inputs/{sha(init)}.ppm"
