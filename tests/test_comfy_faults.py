"""The ComfyUI backend against a server that lies or breaks, and what a local run promises too: the same sampler
steps for img2img and inpaint, progress without a websocket, SIGTERM handled like Ctrl-C."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.backends.comfy.backend import ComfyBackend, generate_remote
from sdxl_nb.backends.comfy.client import ComfyUnreachable
from sdxl_nb.cli import main
from sdxl_nb.errors import GenerationError, Terminated
from sdxl_nb.record.joblog import read_records
from tests.conftest import PYTHON, python_env
from tests.fake_comfy import FakeComfy
from tests.local_server import LocalServer

CKPT = "sd_xl_base_1.0.safetensors"


@pytest.fixture
def fake():
    return FakeComfy()


@pytest.fixture
def server(fake):
    with LocalServer(fake.app()) as running:
        yield running


def remote(server, out, backend=None, **fields):
    backend = backend or ComfyBackend(server.url, checkpoint=CKPT, poll_interval_s=0.05)
    return generate_remote(backend=backend, out_dir=out, **{"width": 64, "height": 64, "steps": 3, "seed": 5,
                                                            "prompt": "a fox", **fields})


def init_images(tmp_path):
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.fromarray(np.full((64, 64, 3), 120, dtype=np.uint8)).save(init)
    Image.new("L", (64, 64), 255).save(mask)
    return str(init), str(mask)


@pytest.mark.parametrize("mode, steps, strength", [("img2img", 10, 0.5), ("img2img", 7, 0.3), ("inpaint", 5, 0.75)])
def test_img2img_and_inpaint_run_the_local_engines_number_of_steps(server, fake, tmp_path, run, mode, steps, strength):
    init, mask = init_images(tmp_path)
    inputs = {"init_image": init, "strength": strength, "steps": steps, **({"mask_image": mask} if mode == "inpaint" else {})}
    local = []
    run(prompt="a fox", out_dir=tmp_path / "local", on_progress=local.append, **inputs)
    remote(server, tmp_path / "remote", **inputs)
    assert list(fake.sampler_steps.values()) == [local[-1]["total"]] == [int(steps * strength)]


def no_ok_image(out):
    record = read_records(out / "jobs.log")[-1]
    assert record["status"] == "failed" and record["images"] == [] and not list(out.glob("*.png"))
    return record


@pytest.mark.parametrize("lie, expected", [
    (dict(image_size=(128, 96)), r"ComfyUI returned a 128x96 image for prompt \S+ where 64x64 was asked; it was not saved"),
    (dict(extra_images=1), r"ComfyUI returned 2 images for prompt \S+ where 1 was asked; none of them was saved"),
    (dict(view_body=b"<html>502 Bad Gateway</html>"),
     r"ComfyUI output '\S+' of prompt \S+ is not a readable image \(UnidentifiedImageError\)"),
])
def test_a_lying_server_gives_a_failed_job_and_no_ok_image(server, fake, tmp_path, lie, expected):
    for name, value in lie.items():
        setattr(fake, name, value)
    with pytest.raises(GenerationError, match=expected) as caught:
        remote(server, tmp_path)
    assert "BytesIO" not in str(caught.value) and "\n" not in str(caught.value)
    assert no_ok_image(tmp_path)["error"] == str(caught.value)


@pytest.mark.parametrize("broken, expected", [
    (dict(close_on={"/view"}), "did not answer GET /view: RemoteProtocolError"),
    (dict(close_on={"/prompt"}), "did not answer POST /prompt: RemoteProtocolError"),
    (dict(view_delay_s=3.0), "did not answer GET /view: ReadTimeout"),
])
def test_a_server_that_hangs_or_hangs_up_fails_the_job_in_bounded_time(server, fake, tmp_path, broken, expected):
    for name, value in broken.items():
        setattr(fake, name, value)
    backend = ComfyBackend(server.url, checkpoint=CKPT, timeout_s=0.5, retries=2, poll_interval_s=0.05)
    started = time.monotonic()
    with pytest.raises(ComfyUnreachable, match=expected):
        remote(server, tmp_path, backend=backend)
    assert time.monotonic() - started < 10
    no_ok_image(tmp_path)


def test_a_lie_in_the_second_image_keeps_the_first_and_fails_the_job(server, fake, tmp_path):
    def progress(p):
        if p["chunk"] == 2:
            fake.image_size = (64, 72)

    with pytest.raises(GenerationError, match=r"image 1: ComfyUI returned a 64x72 image .*; the images before it were "
                                              "saved"):
        remote(server, tmp_path, batch=2, on_progress=progress)
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "failed" and [i["seed"] for i in record["images"]] == [5]
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_cli_a_lying_server_exits_1_with_one_line(server, fake, tmp_path, capsys):
    fake.view_body = b"not an image"
    code = main(["generate", "--prompt", "x", "--width", "64", "--height", "64", "--steps", "2", "--seed", "1",
                 "--backend", "comfy", "--comfy-url", server.url, "--comfy-checkpoint", CKPT, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "is not a readable image" in err


def test_polling_reports_each_images_start_and_end(server, fake, tmp_path):
    fake.websocket = "off"
    progress = []
    remote(server, tmp_path, batch=2, steps=4, on_progress=progress.append)
    assert [(p["chunk"], p["step"], p["total"]) for p in progress] == [(1, 0, 4), (1, 4, 4), (2, 0, 4), (2, 4, 4)]
    assert [p["images_done"] for p in progress] == [0, 0, 1, 1]


@pytest.fixture
def default_sigterm():
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this test runner handles SIGTERM itself")
    yield
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the job


def test_sigterm_interrupts_the_server_and_records_the_job(server, fake, tmp_path, default_sigterm):
    fake.step_delay_s = 0.05
    sent = []

    def progress(p):
        if p["step"] >= 2 and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Terminated):
        remote(server, tmp_path, steps=40, on_progress=progress)
    assert fake.interrupts and fake.interrupts[0]["prompt_id"] in fake.prompts
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "interrupted" and record["error"] == "interrupted (SIGTERM) before the job finished"


@pytest.mark.slow
def test_cli_sigterm_during_a_remote_job_exits_143(server, fake, tmp_path):
    fake.step_delay_s = 0.05
    out = tmp_path / "out"
    process = subprocess.Popen(
        [PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "x", "--width", "64", "--height", "64", "--steps", "400",
         "--backend", "comfy", "--comfy-url", server.url, "--comfy-checkpoint", CKPT, "--out", str(out)],
        env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while fake._running is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert fake._running is not None, process.communicate(timeout=5)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143 and err.decode().strip().endswith("sdxl-nb generate: terminated (SIGTERM)")
    assert fake.interrupts and fake._running is None
    (record,) = read_records(out / "jobs.log")
    assert record["status"] == "interrupted"
