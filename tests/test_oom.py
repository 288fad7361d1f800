"""Out of memory: auto-tuning steps down (halves, VAE slicing/tiling, CPU offload), records each step, never dies."""

import numpy as np
import pytest
import torch

from sdxl_nb.backends.local import oom
from sdxl_nb.errors import GenerationError
from sdxl_nb.record.joblog import read_records
from tests.conftest import pixels

OOM_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB"


class Faults:
    """An engine fault hook: raises out of memory on the attempts `fail(stage, images, attempt)` picks."""

    def __init__(self, fail):
        self.fail, self.calls = fail, []

    def __call__(self, stage, indices, **_context):
        if stage == "latents":
            return None
        self.calls.append((stage, len(indices)))
        if self.fail(stage, len(indices), len(self.calls)):
            raise torch.OutOfMemoryError(OOM_TEXT)
        return None


@pytest.fixture
def faults(engine):
    # The session's engine may have been left auto-tuning by a lab test (the lab turns it on): these tests say
    # themselves when they want it.
    saved, engine.auto_tune = engine.auto_tune, False

    def install(fail):
        engine.fault_hook = Faults(fail)
        return engine.fault_hook

    yield install
    engine.fault_hook, engine.auto_tune = None, saved


def test_two_failures_then_success_saves_everything_and_lists_the_halvings(run, faults, tmp_path):
    hook = faults(lambda stage, images, attempt: stage == "denoise" and images > 1)
    result = run(prompt="halves", batch=4, seed=30, auto_tune=True, out_dir=tmp_path / "tuned")
    record = result.record
    assert record["status"] == "ok" and len(result.paths) == 4
    assert [c for c in hook.calls if c[0] == "denoise"][:3] == [("denoise", 4), ("denoise", 2), ("denoise", 1)]
    tuning = [e for e in record["events"] if "out of memory" in e]
    assert tuning == [
        f"out of memory on cpu at 64x64 with 4 image(s) at once ({OOM_TEXT}); freed the cache; retrying 2 at a time",
        f"out of memory on cpu at 64x64 with 2 image(s) at once ({OOM_TEXT}); freed the cache; retrying 1 at a time",
    ]
    assert record["chunk_size"] == 1
    assert record["auto_tune"] == {"chunks": [1, 1, 1, 1], "vae_slicing": False, "vae_tiling": False,
                                   "cpu_offload": False}
    assert read_records(tmp_path / "tuned" / "jobs.log") == [record]
    # The record is enough for an exact re-run: the same chunking, no fault.
    faults(lambda *_: False)
    again = run(prompt="halves", batch=4, seed=30, chunk_size=record["chunk_size"], out_dir=tmp_path / "again")
    for a, b in zip(result.images, again.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))


def test_decode_out_of_memory_turns_on_vae_slicing_and_tiling_then_restores(engine, run, faults, tmp_path):
    faults(lambda stage, images, attempt: stage == "decode" and attempt <= 2)
    result = run(prompt="vae", seed=4, auto_tune=True, out_dir=tmp_path)
    vae = engine.loaded["tiny-sdxl"].pipe.vae
    assert result.status == "ok" and len(result.paths) == 1
    assert any(e.endswith("freed the cache; retrying with VAE slicing and tiling") for e in result.record["events"])
    assert result.record["auto_tune"]["vae_slicing"] and result.record["auto_tune"]["vae_tiling"]
    assert any("ran out of memory and auto-tuned" in w for w in result.record["warnings"])
    assert not vae.use_slicing and not vae.use_tiling  # the next job starts from the loaded settings


def test_when_everything_fails_one_clear_message_and_the_kernel_lives_on(engine, run, faults, tmp_path):
    faults(lambda stage, images, attempt: stage == "denoise")
    with pytest.raises(GenerationError) as caught:
        run(prompt="hopeless", batch=2, seed=1, auto_tune=True, out_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("out of memory on cpu at 64x64 with 1 image(s) at once even after auto-tuning; tried: "
                              "2 image(s) at once; 1 image(s) at once; 1 image(s) at once with VAE slicing+tiling; "
                              "(model CPU offload does not apply: the model already runs on the CPU)")
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "failed" and record["error"] == message and record["images"] == []
    tuning = [e for e in record["events"] if "out of memory" in e]
    assert len(tuning) == 3 and tuning[-1].endswith("nothing lighter left to try")
    faults(lambda *_: False)
    assert run(prompt="after", seed=1, out_dir=tmp_path).status == "ok"
    assert not engine.loaded["tiny-sdxl"].pipe.vae.use_slicing


def test_cpu_offload_is_the_last_step(engine, run, faults, tmp_path, monkeypatch):
    switched = []
    monkeypatch.setattr(oom, "offload_possible", lambda device: True)
    monkeypatch.setattr(oom, "enable_offload", lambda pipe, device: switched.append("on"))
    monkeypatch.setattr(oom, "disable_offload", lambda pipe, device: switched.append("off"))
    faults(lambda stage, images, attempt: stage == "denoise" and "on" not in switched)
    result = run(prompt="offload", seed=2, auto_tune=True, out_dir=tmp_path)
    assert result.status == "ok" and switched == ["on", "off"]
    steps = [e.rsplit("; ", 1)[-1] for e in result.record["events"] if "out of memory" in e]
    assert steps == ["retrying with VAE slicing and tiling", "retrying with model CPU offload"]
    assert result.record["auto_tune"]["cpu_offload"] is True


def test_without_auto_tune_the_failure_keeps_finished_images(run, faults, tmp_path):
    faults(lambda stage, images, attempt: stage == "denoise" and attempt == 3)  # calls: denoise, decode, denoise
    with pytest.raises(GenerationError, match=r"; lower the size or batch, or turn on auto-tuning \(the lab's "
                                              r"'retry with lighter settings' box; auto_tune=True in Python") as caught:
        run(prompt="partial", batch=3, seed=10, chunk_size=1, out_dir=tmp_path)
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "failed" and record["error"].startswith("out of memory on cpu at 64x64 with 1 image(s)")
    assert [i["seed"] for i in record["images"]] == [10]  # the chunk finished before the failure
    assert [p.name for p in caught.value.result.paths] == [record["images"][0]["path"]]


@pytest.mark.parametrize("exc, expected", [
    (torch.OutOfMemoryError("CUDA out of memory"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 bytes"), True),
    (MemoryError(), True),
    (RuntimeError("shape mismatch"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_is_recognised(exc, expected):
    assert oom.is_out_of_memory(exc) is expected


def test_the_lab_engine_takes_auto_tune_from_the_environment(monkeypatch):
    from sdxl_nb.backends.local import core

    monkeypatch.setattr(core, "_ENGINE", None)
    monkeypatch.setenv("SDXL_NB_AUTO_TUNE", "1")
    assert core.get_engine().auto_tune is True
    monkeypatch.setattr(core, "_ENGINE", None)
    monkeypatch.delenv("SDXL_NB_AUTO_TUNE")
    assert core.get_engine().auto_tune is False
