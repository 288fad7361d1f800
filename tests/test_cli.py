"""`sdxl-nb` as a user runs it: subprocesses, exit codes, one-line errors, nothing written on bad input."""

import json
import subprocess
import time

import pytest

from sdxl_nb.record.joblog import read_records
from tests.conftest import PYTHON, python_env

pytestmark = pytest.mark.slow


def cli(*args, timeout=180, env=None):
    return subprocess.run([PYTHON, "-m", "sdxl_nb", *args], capture_output=True, text=True, timeout=timeout,
                          env=python_env(env))


def test_help_answers_fast_without_torch():
    started = time.perf_counter()
    result = cli("--help", timeout=30)
    assert result.returncode == 0 and "generate" in result.stdout
    assert time.perf_counter() - started < 15
    probe = subprocess.run([PYTHON, "-c", "import sys; from sdxl_nb.cli import build_parser; build_parser(); "
                                          "print('torch' in sys.modules, 'diffusers' in sys.modules)"],
                           capture_output=True, text=True, env=python_env(), timeout=60)
    assert probe.stdout.split() == ["False", "False"]


def test_generate_prints_paths_and_records_the_job(tmp_path):
    # A HOME of its own, which must stay empty: the environment every test runs in (tests/conftest.py) points each
    # cache (sdxl_nb's built models, the HF hub, matplotlib's fonts) away from the user's home.
    home = tmp_path / "home"
    home.mkdir()
    result = cli("generate", "--prompt", "cli fox", "--width", "64", "--height", "64", "--steps", "2",
                 "--batch", "2", "--seed", "5", "--style", "Photoreal", "--out", str(tmp_path / "out"),
                 env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []
    paths = result.stdout.split()
    assert len(paths) == 2 and all(p.endswith(".png") for p in paths)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert [i["path"] for i in record["images"]] == [p.rsplit("/", 1)[-1] for p in paths]
    assert record["seeds"] == [5, 6] and record["style"]["name"] == "Photoreal"


def test_generate_json_prints_the_record(tmp_path):
    result = cli("generate", "--prompt", "json", "--width", "64", "--height", "64", "--steps", "2", "--seed", "1",
                 "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record == read_records(tmp_path / "jobs.log")[0]


@pytest.mark.parametrize("args, message", [
    (["--width", "100", "--height", "64"], "width 100 must be a positive multiple of 8"),
    (["--steps", "0"], "steps 0 is out of range"),
    (["--style", "Nope"], "unknown style 'Nope'; accepted:"),
    (["--model", "no/such"], "unknown model 'no/such'; accepted:"),
    (["--model", "stabilityai/sdxl-turbo"], "is not in the local Hugging Face cache"),
    (["--init-image", "/no/such.png"], "init image '/no/such.png' does not exist"),
    (["--steps", "two"], "argument --steps: invalid int value: 'two'"),
    (["--engine-profile", "Warp"], "unknown engine profile 'Warp'; accepted: Default, Fast (CUDA)"),
    (["--engine-profile", "bfloat16", "--backend", "comfy"], "--engine-profile applies to the local backend only"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    result = cli("generate", "--prompt", "x", "--out", str(out), *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_models_and_presets_listings():
    models = cli("models", "--json")
    assert models.returncode == 0
    by_id = {m["id"]: m for m in json.loads(models.stdout)}
    assert by_id["tiny-sdxl"]["available"] and by_id["tiny-sdxl"]["default"]
    assert not by_id["stabilityai/stable-diffusion-xl-base-1.0"]["available"]
    text = cli("models").stdout
    assert "hf download stabilityai/stable-diffusion-xl-base-1.0" in text
    presets = json.loads(cli("presets", "--json").stdout)
    assert "DPM++ 2M SDE Karras" in presets["schedulers"] and len(presets["styles"]) == 16
    assert presets["engine_profiles"]["Fastest (CUDA graphs)"]["options"]["cuda_graphs"] is True
    assert "Fast (CUDA)" in cli("presets").stdout.split("Engine profiles (--engine-profile):")[1]


def test_engine_profile_applies_and_is_recorded(tmp_path):
    result = cli("generate", "--prompt", "profile", "--width", "64", "--height", "64", "--steps", "2", "--seed", "1",
                 "--engine-profile", "bfloat16", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["env"]["options"]["dtype"] == "bfloat16" and record["env"]["dtype"] == "bfloat16"
