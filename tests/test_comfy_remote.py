"""The ComfyUI backend against a fake server: saved and recorded like local runs, fallbacks, errors, stops."""

import json

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.backends.comfy.backend import ComfyBackend, generate_remote
from sdxl_nb.backends.comfy.client import ComfyRejected, ComfyTimeout, ComfyUnreachable
from sdxl_nb.cli import main
from sdxl_nb.errors import GenerationError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.metadata import parse_parameters
from tests.conftest import REPO
from tests.fake_comfy import FakeComfy, image_for_seed
from tests.local_server import LocalServer

CKPT = "sd_xl_base_1.0.safetensors"
SMALL = dict(width=64, height=64, steps=3)


@pytest.fixture
def fake():
    return FakeComfy()


@pytest.fixture
def server(fake):
    with LocalServer(fake.app()) as running:
        yield running


def remote(server, out, backend=None, **fields):
    return generate_remote(url=None if backend else server.url, backend=backend,
                           checkpoint=None if backend else CKPT, out_dir=out, **{**SMALL, "seed": 5, **fields})


def test_remote_job_is_saved_and_recorded_like_a_local_one(server, fake, tmp_path, run):
    steps = []
    result = remote(server, tmp_path / "out", batch=2, prompt="a fox", on_progress=steps.append)
    record = result.record
    assert result.status == "ok" and record["seeds"] == [5, 6]
    assert record["backend"] == {"name": "comfy", "server": server.url, "checkpoint": CKPT}
    assert record["model"]["source"] == "comfy" and record["device"]["type"] == "comfy"
    # One prompt per image, each with its own seed: image i is seed + i, as locally.
    seeds = [graph["graph"][next(k for k, n in graph["graph"].items() if n["class_type"] == "KSampler")]["inputs"]["seed"]
             for graph in fake.prompts.values()]
    assert seeds == [5, 6]
    for path, seed in zip(result.paths, [5, 6], strict=True):
        with Image.open(path) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(image_for_seed(seed, 64, 64)))
            params = parse_parameters(image.text["parameters"])
            chunk = json.loads(image.text["sdxl_nb"])
        assert params["Seed"] == str(seed) and params["Sampler"] == "Euler" and params["Size"] == "64x64"
        assert chunk["backend"]["name"] == "comfy" and chunk["image"]["seed"] == seed
    assert {p["step"] for p in steps} == {1, 2, 3} and {p["chunk"] for p in steps} == {1, 2}
    assert read_records(tmp_path / "out" / "jobs.log") == [json.loads(json.dumps(record))]
    local = run(prompt="a fox", out_dir=tmp_path / "local").record
    assert set(record) == set(local) | {"backend"}
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs" / "jobs.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(record, schema, format_checker=jsonschema.FormatChecker())
    assert "MODE=txt2img, STATUS=ok" in (tmp_path / "out" / "logs" / "app_events.log").read_text(encoding="utf-8")


def test_credentials_in_the_url_are_used_and_never_recorded(server, fake, tmp_path):
    fake.auth = ("lab", "hunter2-secret")
    url = server.url.replace("http://", "http://lab:hunter2-secret@")
    result = generate_remote(url=url, checkpoint=CKPT, out_dir=tmp_path, prompt="auth", **SMALL, seed=1)
    assert result.status == "ok" and result.record["backend"]["server"] == server.url
    assert not any("websocket" in event for event in result.record["events"])  # its handshake passed the auth too
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"hunter2-secret" not in path.read_bytes(), path
    fake.auth = ("lab", "other")
    with pytest.raises(GenerationError) as failure:
        generate_remote(url=url, checkpoint=CKPT, out_dir=tmp_path, prompt="auth", **SMALL, seed=1)
    assert "hunter2-secret" not in str(failure.value)


@pytest.mark.parametrize("mode, event", [("off", "websocket unavailable; following by polling /history"),
                                         ("drop", "websocket lost")])
def test_without_a_websocket_the_job_follows_by_polling_history(server, fake, tmp_path, mode, event):
    fake.websocket = mode
    backend = ComfyBackend(server.url, checkpoint=CKPT, poll_interval_s=0.05)
    result = remote(server, tmp_path, backend=backend, prompt="poll", batch=2)
    assert result.status == "ok" and len(result.paths) == 2
    assert any(event in e for e in result.record["events"])
    assert sum(1 for method, path in fake.requests if path.startswith("/history/")) >= 2


def test_node_errors_are_one_clear_message_recorded_as_failed(server, fake, tmp_path):
    backend = ComfyBackend(server.url, checkpoint=CKPT)
    remote(server, tmp_path, backend=backend, prompt="first")
    fake.checkpoints = ["other.safetensors"]  # the server's models changed after the check
    with pytest.raises(ComfyRejected) as rejected:
        remote(server, tmp_path, backend=backend, prompt="second")
    message = str(rejected.value)
    assert message.startswith("ComfyUI rejected the workflow: Prompt outputs failed validation; node 1 "
                              "(CheckpointLoaderSimple): Value not in list: ckpt_name: 'sd_xl_base_1.0.safetensors'")
    assert "\n" not in message
    failed = read_records(tmp_path / "jobs.log")[-1]
    assert failed["status"] == "failed" and failed["error"] == message and failed["images"] == []


def test_cli_remote_generate_exit_codes(server, fake, tmp_path, capsys):
    base = ["generate", "--prompt", "cli", "--width", "64", "--height", "64", "--steps", "2", "--seed", "3",
            "--backend", "comfy", "--comfy-url", server.url, "--out", str(tmp_path / "out")]
    assert main(base + ["--comfy-checkpoint", CKPT]) == 0
    assert len(capsys.readouterr().out.split()) == 1
    # A checkpoint the server does not list: bad input, one line, nothing written.
    assert main([*base[:-1], str(tmp_path / "none"), "--comfy-checkpoint", "missing.safetensors"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint 'missing.safetensors' is not on the ComfyUI server" in err and CKPT in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "none").exists()
    assert main(["generate", "--prompt", "x", "--backend", "comfy"]) == 2
    assert "needs a server URL" in capsys.readouterr().err
    assert main(["generate", "--prompt", "x", "--comfy-url", server.url]) == 2
    assert "--comfy-url needs --backend comfy" in capsys.readouterr().err


def test_cli_node_errors_exit_1_with_one_line(server, fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ComfyBackend, "_vae", lambda self, info: ("missing-vae.safetensors", []))
    code = main(["generate", "--prompt", "x", "--width", "64", "--height", "64", "--steps", "2", "--seed", "1",
                 "--backend", "comfy", "--comfy-url", server.url, "--comfy-checkpoint", CKPT, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "ComfyUI rejected the workflow" in err and "(VAELoader): Value not in list: vae_name" in err
    assert read_records(tmp_path / "jobs.log")[0]["status"] == "failed"


def test_stop_interrupts_the_running_prompt_and_keeps_finished_images(server, fake, tmp_path):
    fake.step_delay_s = 0.05
    backend = ComfyBackend(server.url, checkpoint=CKPT, poll_interval_s=0.05)
    progress = []

    def stop() -> bool:  # stop once the second image has started sampling
        return any(p["chunk"] == 2 for p in progress)

    result = remote(server, tmp_path, backend=backend, prompt="stop", batch=3, steps=20, on_progress=progress.append,
                    should_stop=stop)
    assert result.status == "interrupted" and result.record["seeds"] == [5, 6, 7]
    assert [i["seed"] for i in result.record["images"]] == [5] and len(result.paths) == 1
    assert fake.interrupts and fake.interrupts[0]["prompt_id"] in fake.prompts
    assert len(fake.prompts) == 2  # the third image was never queued
    assert any("stopped during image 1" in e for e in result.record["events"])


def test_a_prompt_that_never_finishes_times_out_and_is_interrupted(server, fake, tmp_path):
    fake.hang = True
    backend = ComfyBackend(server.url, checkpoint=CKPT, job_timeout_s=1.0, poll_interval_s=0.05)
    with pytest.raises(ComfyTimeout, match="did not finish prompt .* within 1 s"):
        remote(server, tmp_path, backend=backend, prompt="hang")
    (prompt_id,) = fake.prompts
    assert fake.deleted == [prompt_id] and fake.interrupts
    assert read_records(tmp_path / "jobs.log")[0]["status"] == "failed"


def test_an_execution_error_names_the_node(server, fake, tmp_path):
    fake.fail_in_node = "KSampler"
    with pytest.raises(GenerationError, match=r"node \d+ \(KSampler\): CUDA out of memory"):
        remote(server, tmp_path, prompt="oom")
    assert "CUDA out of memory" in read_records(tmp_path / "jobs.log")[0]["error"]


def test_an_unreachable_server_fails_after_bounded_retries(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = ComfyBackend(f"http://127.0.0.1:{port}", checkpoint=CKPT, retries=2)
    with pytest.raises(ComfyUnreachable, match=f"ComfyUI server http://127.0.0.1:{port} did not answer"):
        generate_remote(backend=backend, out_dir=tmp_path, prompt="x", **SMALL, seed=1)
    assert not (tmp_path / "jobs.log").exists()


def test_img2img_uploads_the_init_image_and_denoises_by_strength(server, fake, tmp_path):
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (10, 200, 10)).save(init)
    result = remote(server, tmp_path / "out", prompt="img2img", init_image=str(init), strength=0.5,
                    width=None, height=None, steps=10)
    assert result.status == "ok" and result.record["mode"] == "img2img"
    (name, data), = fake.uploads.items()
    assert data == init.read_bytes() and name.startswith("sdxl_nb_")
    (graph,) = [p["graph"] for p in fake.prompts.values()]
    sampler = next(n for n in graph.values() if n["class_type"] == "KSamplerAdvanced")
    assert (sampler["inputs"]["steps"], sampler["inputs"]["start_at_step"]) == (10, 5)
    assert list(fake.sampler_steps.values()) == [5]  # 10 x 0.5, as diffusers runs it
    assert next(n for n in graph.values() if n["class_type"] == "LoadImage")["inputs"]["image"] == name
    assert result.record["init_image"]["sha256"] and result.record["strength"] == 0.5


def test_ctrl_c_interrupts_the_server_before_leaving(server, fake, tmp_path):
    fake.step_delay_s = 0.05

    def progress(p):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        remote(server, tmp_path, prompt="ctrl-c", steps=20, on_progress=progress)
    assert fake.interrupts
    # Every generation is recorded: a Ctrl-C'd job too, as interrupted, with nothing finished.
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "interrupted" and record["images"] == []


def test_audit_reruns_a_remote_job_on_its_server_and_never_locally(server, fake, tmp_path, monkeypatch):
    from sdxl_nb.audit.backends import NOT_RERUN_REMOTE
    from sdxl_nb.audit.report import run_audit

    out = tmp_path / "out"
    remote(server, out, batch=2, prompt="a fox")
    prompts = len(fake.prompts)
    # Without a way to reach the server, the job is reported as not re-run: never re-run here and called diverged.
    monkeypatch.delenv("SDXL_NB_COMFY_URL", raising=False)
    report = run_audit(out, rerun="all")
    assert list(report.reruns["verdict"]) == [NOT_RERUN_REMOTE] * 2 and report.ok
    assert any(NOT_RERUN_REMOTE in line and server.url in line for line in report.warnings())
    assert len(fake.prompts) == prompts
    # With SDXL_NB_COMFY_URL naming the same server, it re-runs there, seed by seed, bit-exact.
    monkeypatch.setenv("SDXL_NB_COMFY_URL", server.url)
    report = run_audit(out, rerun="all")
    assert list(report.reruns["verdict"]) == ["bit-exact"] * 2 and report.ok
    assert len(fake.prompts) == prompts + 2
    assert main(["audit", str(out), "--rerun", "all"]) == 0


def test_audit_of_a_remote_job_whose_server_is_gone(server, fake, tmp_path, monkeypatch):
    from sdxl_nb.audit.backends import NOT_RERUN_REMOTE
    from sdxl_nb.audit.report import run_audit

    out = tmp_path / "out"
    remote(server, out, prompt="a fox")
    monkeypatch.setenv("SDXL_NB_COMFY_URL", "http://127.0.0.1:9")  # another server: not the job's
    report = run_audit(out, rerun="all")
    assert list(report.reruns["verdict"]) == [NOT_RERUN_REMOTE] and "ran on the comfy server" in report.reruns["note"][0]
