"""A received output folder is data: its jobs.log never makes audit/verify load a file outside the user's folders."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sdxl_nb.analysis.sources import read_logged_records
from sdxl_nb.audit import BIT_EXACT, ReplayError, request_from_record, rerun_jobs, run_audit, select_for_rerun
from sdxl_nb.cli import main
from sdxl_nb.config.trusted_folders import OUTSIDE_INPUTS, OUTSIDE_MODEL_FOLDERS, NotTrusted, in_model_folders, within
from tests.conftest import PYTHON, REPO, SMALL, python_env
from tests.hostile import deep_json, pickle_payload, time_bound, torchscript_payload
from tests.tiny_upscaler import write_tiny_upscaler

NOT_RERUN = {OUTSIDE_MODEL_FOLDERS, OUTSIDE_INPUTS}


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def upscaler_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("my-upscalers")
    write_tiny_upscaler(folder / "tiny-compact.safetensors")
    mp = pytest.MonkeyPatch()
    mp.setenv("SDXL_NB_UPSCALERS", str(folder))
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def honest(engine, upscaler_dir, tmp_path_factory) -> Path:
    """A real output folder: txt2img, hires with a real tiny upscaler, img2img (init in inputs/), a LoRA job."""
    from sdxl_nb.jobs.generate import generate

    folder = tmp_path_factory.mktemp("colleague") / "out"
    (folder / "inputs").mkdir(parents=True)
    init = folder / "inputs" / "init.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    common = dict(out_dir=folder, engine=engine, **SMALL)
    generate(prompt="a fox", seed=1, **common)
    generate(prompt="a fox", seed=2, hires_scale=2, hires_steps=2, hires_denoise=0.5, hires_upscaler="tiny-compact",
             **common)
    generate(prompt="a fox in img2img", init_image=str(init), strength=0.6, seed=3, **common)
    generate(prompt="a fox <lora:tiny-sdxl-lora:0.8>", seed=4, **common)
    return folder


def records_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "jobs.log").read_text(encoding="utf-8").splitlines()]


def write_log(folder: Path, records: list[dict], extra: str = "") -> None:
    (folder / "jobs.log").write_text("".join(json.dumps(r) + "\n" for r in records) + extra, encoding="utf-8")


def job(record: dict, number: int, **changes) -> dict:
    """A copy of a record under a new job id, with changed fields."""
    return {**record, "job_id": f"{number:032x}", **changes}


@pytest.fixture
def hostile(honest, tmp_path, upscaler_dir):
    """The honest folder received, its jobs.log rewritten to point (with matching sha256) at payloads a stranger
    placed outside every configured folder; returns (folder, markers, {job id: path it names})."""
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    markers = [tmp_path / f"marker-{i}" for i in range(6)]
    ts_upscaler = torchscript_payload(stranger / "evil-upscaler.pth", markers[0])
    lora = pickle_payload(stranger / "evil-lora.safetensors", markers[1])
    embedding = pickle_payload(stranger / "evil-embedding.pt", markers[2], legacy=True)
    checkpoint = torchscript_payload(stranger / "evil.ckpt", markers[3])
    controlnet = torchscript_payload(stranger / "evil-controlnet.pth", markers[4])
    ip = pickle_payload(stranger / "evil-ip.bin", markers[5])
    link = upscaler_dir / "linked-evil.pth"  # a symlink inside the user's folder that leads outside it
    if not link.exists():
        link.symlink_to(ts_upscaler)
    folder = tmp_path / "received"
    shutil.copytree(honest, folder)
    plain, hires, img2img, lora_job = records_of(folder)
    named = {}
    hires["hires"]["upscaler"].update(path=str(ts_upscaler), sha256=sha(ts_upscaler))
    named[hires["job_id"]] = ts_upscaler
    img2img["init_image"].update(path="/etc/hostname" if Path("/etc/hostname").is_file() else "/etc/passwd")
    img2img["init_image"]["sha256"] = sha(img2img["init_image"]["path"])
    named[img2img["job_id"]] = img2img["init_image"]["path"]
    lora_job["loras"][0].update(path=str(lora), sha256=sha(lora))
    named[lora_job["job_id"]] = lora
    extra = [
        job(plain, 1, embeddings=[{"name": "evil", "path": str(embedding), "sha256": sha(embedding), "vectors": 1}]),
        job(plain, 2, model={**plain["model"], "source": "checkpoint", "path": str(checkpoint),
                             "sha256": sha(checkpoint)}),
        job(plain, 3, controlnets=[{"model": {"name": "evil", "path": str(controlnet), "sha256": sha(controlnet)},
                                    "image": {"path": "inputs/init.png", "sha256": sha(folder / "inputs/init.png")}}]),
        job(plain, 4, ip_adapter={"name": "evil", "path": str(ip), "sha256": sha(ip), "root": str(stranger),
                                  "subfolder": "", "scale": 0.5,
                                  "image_encoder": {"folder": "image_encoder", "path": str(stranger / "enc")}},
            ip_images=[{"path": "inputs/init.png", "sha256": sha(folder / "inputs/init.png")}]),
        job(hires, 5, hires={**hires["hires"], "upscaler": {**hires["hires"]["upscaler"], "path": str(link)}}),
        job(img2img, 6, init_image={**img2img["init_image"], "path": "inputs/../../../../../../etc/passwd"}),
        job(img2img, 7, init_image={**img2img["init_image"], "path": "~/.ssh/id_rsa"}),
    ]
    named.update({extra[0]["job_id"]: embedding, extra[1]["job_id"]: checkpoint, extra[2]["job_id"]: controlnet,
                  extra[3]["job_id"]: ip, extra[4]["job_id"]: link, extra[5]["job_id"]: "etc/passwd",
                  extra[6]["job_id"]: "id_rsa"})
    write_log(folder, [plain, hires, img2img, lora_job, *extra])
    yield folder, markers, named, plain["job_id"]
    link.unlink()


def check_hostile_rows(table, markers, named, honest_id) -> None:
    assert not [m for m in markers if m.exists()], "a payload ran"
    for job_id, path in named.items():
        rows = table[table["job_id"] == job_id]
        assert len(rows) >= 1 and set(rows["verdict"]) <= NOT_RERUN, (job_id, rows[["verdict", "note"]].values)
        assert all(str(path) in note for note in rows["note"]), rows["note"].tolist()
    assert table[table["job_id"] == honest_id]["verdict"].tolist() == [BIT_EXACT]


def test_an_honest_received_folder_reruns_bit_exact(honest, engine, tmp_path):
    folder = shutil.copytree(honest, tmp_path / "received")
    report = run_audit(folder, rerun="all", engine=engine)
    assert report.problems() == [], report.text()
    assert set(report.reruns["verdict"]) == {BIT_EXACT} and len(report.reruns) == 4


def test_hostile_records_are_not_rerun_and_the_honest_job_still_is(hostile, engine):
    folder, markers, named, honest_id = hostile
    with time_bound(600):
        report = run_audit(folder, rerun="all", engine=engine)
    check_hostile_rows(report.reruns, markers, named, honest_id)
    problems = report.problems()
    for job_id, path in named.items():
        assert any(line.startswith(f"job {job_id}: not re-run (") and str(path) in line for line in problems), problems
    assert not report.ok
    assert any("outside your model folders (not read)" in line for line in report.warnings())  # file drift says it
    json.dumps(report.to_dict())


def test_cli_audit_of_a_hostile_folder_is_rows_not_code(hostile):
    folder, markers, named, honest_id = hostile
    done = subprocess.run([PYTHON, "-m", "sdxl_nb", "audit", str(folder), "--rerun", "all", "--json"],
                          capture_output=True, text=True, timeout=900, cwd=REPO, env=python_env())
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert not [m for m in markers if m.exists()]
    report = json.loads(done.stdout)
    rows = {row["job_id"]: row for row in report["reruns"]}
    assert rows[honest_id]["verdict"] == BIT_EXACT
    for job_id, path in named.items():
        assert rows[job_id]["verdict"] in NOT_RERUN and str(path) in rows[job_id]["note"]
    verified = subprocess.run([PYTHON, "-m", "sdxl_nb", "verify", "--out", str(folder)], capture_output=True,
                              text=True, timeout=300, cwd=REPO, env=python_env())
    assert verified.returncode == 0 and "Traceback" not in verified.stderr, verified.stdout + verified.stderr


def hostile_lines(folder: Path, good: dict) -> str:
    """Lines a stranger's jobs.log may hold: each must be one problem, never a traceback or a hang."""
    wrong = [job(good, 100 + i, **change) for i, change in enumerate([
        {"job_id": {"a": [1]}}, {"mode": ["txt2img"]}, {"images": "not a list"}, {"images": [{"path": 5}]},
        {"images": [{"path": "/dev/zero", "sha256": "0" * 64}]},
        {"images": [{"path": "../../../../../../dev/zero", "sha256": "0" * 64}]},
        {"images": [{"path": "fifo.png", "sha256": "0" * 64}]},
        {"images": [{"path": "zero-link.png", "sha256": "0" * 64}]},
        {"init_image": {"path": "/dev/zero", "sha256": "0" * 64}, "mode": "img2img", "strength": 0.5},
        {"loras": [{"name": "z", "path": "/dev/zero", "sha256": "0" * 64, "weight": 1}]},
        {"model": {"id": "tiny-sdxl", "source": "checkpoint", "path": "/dev/zero", "sha256": "0" * 64}},
        {"controlnets": 7}, {"loras": {"a": 1}}, {"scheduler": "Euler"}, {"env": [1, 2]},
        {"steps": 10**18}, {"width": 10**12}, {"batch": -1}, {"seeds": [10**30]}, {"cfg": 1e308},
        {"style": {"name": ["x"], "hash": {"y": 1}}}, {"hires": {"upscaler": {"name": "x", "kind": "model",
                                                                               "path": "/dev/zero"}}},
    ])]
    os.mkfifo(folder / "fifo.png")
    (folder / "zero-link.png").symlink_to("/dev/zero")
    return "".join(json.dumps(r) + "\n" for r in wrong) + "\n".join([
        '{"job_id": "torn", "mode": "txt2im', deep_json(), '{"steps": ' + "9" * 5000 + "}",
        "[" * 900 + "]" * 900, '"just a string"', "\xff\xfe not utf-8 \x00"]) + "\n" + "x" * (100 << 20) + "\n" + \
        '{"job_id": "last", "mode": "txt2img", "images": [], "steps": 2'


def test_plain_audit_and_verify_survive_any_jobs_log(honest, tmp_path, capsys):
    folder = shutil.copytree(honest, tmp_path / "received")
    good = records_of(folder)
    (folder / "jobs.log").write_text("".join(json.dumps(r) + "\n" for r in good) + hostile_lines(folder, good[0]),
                                     encoding="utf-8")
    with time_bound(300):
        report = run_audit(folder)
        text = report.text()
        json.dumps(report.to_dict())
        code = main(["audit", str(folder)])
        verified = main(["verify", "--out", str(folder)])
    out = capsys.readouterr()
    assert code == 1 and verified == 1 and "Traceback" not in out.out + out.err
    assert report.jobs >= len(good)
    problems = [str(p) for p in report.line_problems]
    assert any("longer than 16 MiB" in p for p in problems) and any("JSON" in p for p in problems)
    assert any("job_id is a JSON dict" in p for p in problems) and any("mode is a JSON list" in p for p in problems)
    assert "/dev/zero" in text
    assert "line longer than 16 MiB" in out.out  # verify lists it too


def test_plain_audit_and_verify_stay_clean_on_the_honest_folder(honest, tmp_path, capsys):
    folder = shutil.copytree(honest, tmp_path / "received")
    assert run_audit(folder).problems() == []
    assert main(["verify", "--out", str(folder)]) == 0


def test_a_rerun_of_jobs_naming_devices_and_fifos_ends(honest, tmp_path, engine):
    folder = shutil.copytree(honest, tmp_path / "received")
    good = records_of(folder)
    extra = hostile_lines(folder, good[0]).split("\n")
    (folder / "jobs.log").write_text("".join(json.dumps(r) + "\n" for r in good) + "\n".join(extra[:22]) + "\n",
                                     encoding="utf-8")
    records, _ = read_logged_records(folder)
    with time_bound(600):
        table = rerun_jobs(select_for_rerun(records[len(good):], "all"), engine)
    assert len(table) and BIT_EXACT not in set(table["verdict"][table["image_path"].astype(str).str.contains("dev")])


def test_trusted_folders_resolve_links_and_dots(tmp_path, monkeypatch):
    mine, elsewhere = tmp_path / "loras", tmp_path / "elsewhere"
    mine.mkdir()
    elsewhere.mkdir()
    (elsewhere / "x.safetensors").write_bytes(b"x")
    (mine / "ok.safetensors").write_bytes(b"x")
    (mine / "link.safetensors").symlink_to(elsewhere / "x.safetensors")
    monkeypatch.setenv("SDXL_NB_LORAS", str(mine))
    assert in_model_folders(mine / "ok.safetensors", "lora")
    assert not in_model_folders(mine / "link.safetensors", "lora")
    assert not in_model_folders(f"{mine}/../elsewhere/x.safetensors", "lora")
    assert not in_model_folders(mine / "ok.safetensors", "upscaler")  # a LoRA folder is no upscaler folder
    from sdxl_nb.config.registry import hf_cache_dir
    from sdxl_nb.config.tiny import cache_root

    assert in_model_folders(hf_cache_dir() / "models--a--b" / "x.bin", "upscaler")
    assert in_model_folders(cache_root() / "loras" / "demo.safetensors", "lora")
    for bad in ("", "a\0b", 5, None, "~nosuchuser12345/x"):
        assert not in_model_folders(bad, "lora")
    assert within(mine, "ok.safetensors") == (mine / "ok.safetensors").resolve()
    assert within(mine, "../elsewhere/x.safetensors") is None and within(mine, "link.safetensors") is None
    assert within(mine, "/etc/passwd") is None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=3), max_leaves=8)
FIELDS = ["mode", "model", "scheduler", "steps", "cfg", "width", "height", "batch", "seeds", "seed", "init_image",
          "mask_image", "strength", "loras", "embeddings", "hires", "ip_adapter", "ip_images", "controlnets", "refiner",
          "styled_prompt", "effective_negative_prompt", "style", "images", "env", "job_id"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=4))
def test_a_record_of_any_shape_is_refused_in_one_line(honest, changes):
    """request_from_record (what a re-run runs) on wrong types: a ReplayError or NotTrusted, never another error."""
    for record in records_of(honest):
        try:
            request_from_record({**record, **changes}, honest)
        except (ReplayError, NotTrusted) as exc:
            assert "\n" not in str(exc)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=4))
def test_plain_audit_reads_a_log_of_any_shape(honest, tmp_path_factory, changes):
    folder = tmp_path_factory.mktemp("shapes") / "out"
    shutil.copytree(honest, folder)
    write_log(folder, [{**record, **changes} for record in records_of(folder)])
    report = run_audit(folder)
    report.text()
    json.dumps(report.to_dict())
