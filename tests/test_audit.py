"""Audits: damaged/stray files, bit-exact re-runs of every mode, a changed setting diverges, drift flagged."""

import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import (
    BIT_EXACT,
    CLOSE,
    DIVERGED,
    SKIPPED,
    check_integrity,
    environment_drift,
    preset_drift,
    rerun_jobs,
    select_for_rerun,
)
from sdxl_nb.audit.compare import compare_images
from sdxl_nb.audit.drift import MAY_DIFFER, installed_environment
from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError
from tests.audit_jobs import copy_jobs, make_jobs, rewrite_log
from tests.conftest import REPO


@pytest.fixture(scope="module")
def jobs_dir(engine, tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit") / "out"
    make_jobs(folder, engine)
    return folder


def test_intact_folder_passes_integrity(jobs_dir):
    records, problems = read_logged_records(jobs_dir)
    report = check_integrity(records)
    assert problems == [] and report.ok and report.problems() == []
    assert report.files["role"].tolist().count("image") == 4  # 2 + 1 + 1 saved images
    assert set(report.files["state"]) == {"ok"}  # inputs/ included: they still match their hashes


def test_tampered_and_deleted_files_are_found_with_their_paths(jobs_dir, tmp_path):
    folder = copy_jobs(jobs_dir, tmp_path / "out")
    records, _ = read_logged_records(folder)
    tampered = folder / records[0].record["images"][0]["path"]
    deleted = folder / records[1].record["images"][0]["path"]
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    deleted.unlink()
    (folder / "stray.png").write_bytes(b"not ours")
    (folder / ".sdxl_nb-tmp-0123456789ab").write_bytes(b"half a png")
    (folder / "logs" / "other.txt").write_text("ignored", encoding="utf-8")
    (folder / "inputs" / "extra.png").write_bytes(b"ignored")
    report = check_integrity(records)
    damaged = report.damaged.set_index("path")["state"].to_dict()
    assert damaged == {str(tampered): "changed", str(deleted): "missing"}
    assert report.untracked == [folder / "stray.png"]
    assert report.leftovers == [folder / ".sdxl_nb-tmp-0123456789ab"]
    assert not report.ok and any(str(deleted) in line and line.startswith("missing") for line in report.problems())
    missing = report.jobs_with_missing_images().set_index("job_id")
    assert missing.loc[records[0].record["job_id"], "changed"] == 1
    assert missing.loc[records[1].record["job_id"], "missing"] == 1


def test_rerun_of_txt2img_img2img_and_inpaint_is_bit_exact(jobs_dir, engine):
    records, _ = read_logged_records(jobs_dir)
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["mode"].tolist() == ["txt2img", "txt2img", "img2img", "inpaint"]
    assert table["verdict"].tolist() == [BIT_EXACT] * 4, table["note"].tolist()
    assert (table["max_abs_diff"] == 0).all() and (table["drift"] == "").all() and (table["note"] == "").all()


def test_a_record_edited_to_another_scheduler_diverges(jobs_dir, engine, tmp_path):
    folder = copy_jobs(jobs_dir, tmp_path / "out")

    def edit(record):
        if record["mode"] == "txt2img":
            record["scheduler"].update(name="DDIM", **{"class": "DDIMScheduler"})
        return record

    rewrite_log(folder, edit)
    records, _ = read_logged_records(folder)
    table = rerun_jobs(select_for_rerun(records, 1, [records[0].record["job_id"]]), engine)
    assert table["verdict"].tolist() == [DIVERGED, DIVERGED]
    assert (table["max_abs_diff"] > 8).all() and (table["psnr_db"] < 40).all()


def test_environment_drift_is_flagged_before_running(jobs_dir, engine, tmp_path):
    folder = copy_jobs(jobs_dir, tmp_path / "out")
    rewrite_log(folder, lambda r: {**r, "env": {**r["env"], "torch": "2.1.0+cu121", "gpu": "NVIDIA A100-SXM4-80GB"}}
                if r["mode"] == "inpaint" else r)
    records, _ = read_logged_records(folder)
    versions_only = environment_drift(records)
    assert versions_only["job_id"].tolist() == [records[2].record["job_id"]]
    assert versions_only["changed"].tolist() == ["torch"]  # the GPU is unknown without the engine
    assert "torch 2.1.0+cu121 -> " + installed_environment()["torch"] in versions_only["differences"].iloc[0]
    seen = []
    table = rerun_jobs(records[2:], engine, on_job=lambda logged, drift: seen.append(drift))
    assert seen[0].startswith("torch 2.1.0+cu121 -> ") and "gpu NVIDIA A100-SXM4-80GB -> (none)" in seen[0]
    assert seen[0].endswith(MAY_DIFFER) and table["drift"].tolist() == seen
    assert table["verdict"].tolist() == [BIT_EXACT]  # flagged, and here the pixels still match


def test_preset_drift_names_edited_styles_and_schedulers(jobs_dir, engine, tmp_path):
    records, _ = read_logged_records(jobs_dir)
    assert preset_drift(records).empty
    raw = json.loads((REPO / "presets.json").read_text(encoding="utf-8"))
    for style in raw["styles"]:
        if style["name"] == "Cinematic":
            style["prompt"] = "cinematic still, {prompt}, film grain"
    for scheduler in raw["schedulers"]:
        if scheduler["name"] == "DPM++ 2M Karras":
            scheduler["kwargs"] = {"use_karras_sigmas": False}
    edited = tmp_path / "presets.json"
    edited.write_text(json.dumps(raw), encoding="utf-8")
    drift = preset_drift(records, load_presets(edited)).set_index("kind")
    assert drift.loc["style", "name"] == "Cinematic" and drift.loc["style", "recorded"] != drift.loc["style", "current"]
    assert drift.loc["style", "current"] == load_presets(edited).styles["Cinematic"].content_hash
    assert (drift.loc["scheduler", "recorded"], drift.loc["scheduler", "current"]) == (
        "use_karras_sigmas=True", "use_karras_sigmas=False")
    # Re-runs use what the records say ran, so the edited presets change nothing.
    table = rerun_jobs(records[:2], engine, presets=load_presets(edited))
    assert table["verdict"].tolist() == [BIT_EXACT] * 3


def test_a_changed_init_image_cannot_be_rerun(jobs_dir, engine, tmp_path):
    folder = copy_jobs(jobs_dir, tmp_path / "out")
    rewrite_log(folder, lambda r: {**r, "init_image": {**r["init_image"], "path": str(folder / "inputs" / "init.png")}}
                if r["init_image"] else r)
    Image.new("RGB", (64, 64), "red").save(folder / "inputs" / "init.png")
    records, _ = read_logged_records(folder)
    table = rerun_jobs(records[1:2], engine)
    assert table["verdict"].tolist() == [SKIPPED] and "changed since the job" in table["note"].iloc[0]
    assert any("init.png" in line for line in check_integrity(records).warnings())


def _animate_record(folder, frames):
    record = {"schema": 1, "job_id": "b" * 32, "mode": "animate", "status": "ok", "images": [], "frames": frames}
    (folder / "jobs.log").write_text(json.dumps(record) + "\n", encoding="utf-8")
    return read_logged_records(folder)[0]


def test_animate_jobs_dispatch_to_rerun_frames(tmp_path, monkeypatch, engine):
    rng = np.random.default_rng(1)
    frames = []
    for index in range(2):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"f{index}.png")
        frames.append({"index": index, "seed": 4, "prompt": "p", "t": index, "path": f"f{index}.png", "sha256": ""})
    records = _animate_record(tmp_path, frames)
    monkeypatch.setitem(sys.modules, "sdxl_nb.jobs.animate", types.ModuleType("sdxl_nb.jobs.animate"))  # no rerun_frames
    assert rerun_jobs(records, engine)["note"].tolist() == ["animate re-run not available"] * 2
    calls = []

    def rerun_frames(record, engine, folder):
        calls.append((record["job_id"], engine, folder))
        first = Image.open(tmp_path / "f0.png").convert("RGB")
        second = np.asarray(Image.open(tmp_path / "f1.png").convert("RGB")).copy()
        second[0, 0] = (second[0, 0].astype(int) + 100) % 256
        return [first, Image.fromarray(second)]

    module = types.ModuleType("sdxl_nb.jobs.animate")
    module.rerun_frames = rerun_frames
    monkeypatch.setitem(sys.modules, "sdxl_nb.jobs.animate", module)
    table = rerun_jobs(records, engine)
    assert calls == [("b" * 32, engine, tmp_path)]  # the folder its kept inputs are read from
    assert table["verdict"].tolist() == [BIT_EXACT, DIVERGED] and table["image_index"].tolist() == [0, 1]


def test_image_comparison_thresholds():
    rng = np.random.default_rng(0)
    base = rng.integers(10, 240, (64, 64, 3), dtype=np.uint8)
    assert compare_images(base, base.copy()).verdict == BIT_EXACT
    noisy = (base.astype(int) + rng.integers(-2, 3, base.shape)).astype(np.uint8)
    close = compare_images(base, noisy)
    assert close.verdict == CLOSE and close.max_abs_diff == 2 and close.psnr_db > 40
    patch = base.copy()
    patch[:3, :3] = 255 - patch[:3, :3]  # a small region changed completely: PSNR stays high
    small = compare_images(base, patch)
    assert small.verdict == DIVERGED and small.psnr_db > 30 and small.max_abs_diff > 8
    assert compare_images(base, base[:32]).verdict == DIVERGED


def test_selecting_jobs_to_rerun(jobs_dir):
    records, _ = read_logged_records(jobs_dir)
    ids = [logged.record["job_id"] for logged in records]
    assert [r.record["job_id"] for r in select_for_rerun(records, 2)] == ids[1:]
    assert len(select_for_rerun(records, "all")) == 3 and select_for_rerun(records) == []
    assert select_for_rerun(records, None, [ids[0][:8]])[0].record["job_id"] == ids[0]
    with pytest.raises(InputError, match="matches no job"):
        select_for_rerun(records, None, ["zzzz"])
    with pytest.raises(InputError, match="re-run count 0 is not valid"):
        select_for_rerun(records, 0)


def test_an_empty_log_beside_images_reports_them_untracked(tmp_path):
    from sdxl_nb.audit import run_audit

    (tmp_path / "jobs.log").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(tmp_path / "orphan.png")
    report = run_audit(tmp_path)
    assert report.jobs == 0 and report.integrity.untracked == [tmp_path / "orphan.png"]
    assert not report.ok and report.reruns is None


@pytest.mark.parametrize("mode, fields", [
    ("seed-walk", {}),
    ("slerp", {"seed_end": 9}),
    ("prompt-travel", {"prompt_end": "a lighthouse in a storm"}),
])
def test_rerun_of_real_animate_jobs_is_bit_exact(engine, tmp_path, mode, fields):
    from sdxl_nb.jobs.animate import animate

    animate(prompt="a lighthouse at dusk", mode=mode, frames=3, seed=8, width=64, height=64, steps=2,
            out_dir=tmp_path, engine=engine, **fields)
    records, _ = read_logged_records(tmp_path)
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["mode"].tolist() == ["animate"] * 3
    assert table["verdict"].tolist() == [BIT_EXACT] * 3, table["note"].tolist()


def test_installed_torch_version_is_read_as_records_hold_it_with_its_build_label():
    """The wheel's metadata drops "+cu130"; the record holds torch.__version__: the two must not read as drift."""
    import torch

    from sdxl_nb.audit.drift import installed_environment

    assert installed_environment()["torch"] == torch.__version__


def test_recorded_calls_group_positions_in_index_order_or_say_none():
    from sdxl_nb.backends.base import recorded_calls

    entries = [{"index": 3, "call": 1}, {"index": 0, "call": 0}, {"index": 2, "call": 1}, {"index": 1, "call": 0}]
    assert recorded_calls(entries) == ((0, 1), (2, 3))
    assert recorded_calls([{"index": 5, "call": 2}, {"index": 4, "call": 7}]) == ((1,), (0,))  # calls in call order
    assert recorded_calls([{"index": 0, "call": 0}, {"index": 1}]) is None  # a record from before calls were kept
