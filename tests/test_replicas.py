"""Replicas: a batch split across model copies gives the single-device seeds and order; a failed replica costs only its images."""

import numpy as np
import pytest

from sdxl_nb.backends.replicas import ReplicaEngine, device_label, parse_devices, split_indices
from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.jobs.generate import generate
from sdxl_nb.record.joblog import read_records
from tests.conftest import SMALL, pixels


@pytest.fixture(scope="module")
def second_engine(isolated_env):
    from sdxl_nb.backends.local import Engine

    return Engine(device="cpu")


@pytest.mark.parametrize("batch, parts, blocks", [
    (4, 2, [[0, 1], [2, 3]]), (3, 2, [[0, 1], [2]]), (1, 3, [[0]]), (5, 3, [[0, 1], [2, 3], [4]]),
])
def test_split_indices_is_contiguous_and_covers_the_batch_once(batch, parts, blocks):
    assert split_indices(batch, parts) == blocks


def test_devices_are_parsed_or_refused_in_one_line():
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"] and parse_devices("cpu,cpu") == ["cpu", "cpu"]
    with pytest.raises(InputError, match="replica devices 'gpu0' not understood; accepted: all"):
        parse_devices("gpu0")
    assert device_label("cuda:1") == "GPU 1" and device_label("cuda") == "GPU 0" and device_label("cpu") == "cpu"


def test_replicas_keep_seeds_order_and_pixels_of_a_single_device_run(engine, second_engine, tmp_path):
    request = dict(prompt="replicas", batch=3, seed=40, chunk_size=1, **SMALL)
    single = generate(out_dir=tmp_path / "single", engine=engine, **request)
    replicas = ReplicaEngine(engines=[engine, second_engine])
    stages, progress = [], []
    split = generate(out_dir=tmp_path / "split", engine=replicas, on_stage=stages.append,
                     on_progress=progress.append, **request)
    assert split.status == "ok" and split.seeds == single.seeds == [40, 41, 42]
    assert [i["index"] for i in split.record["images"]] == [0, 1, 2]
    for a, b in zip(single.images, split.images, strict=True):
        assert np.array_equal(pixels(a), pixels(b))
    assert "ran on 2 replica(s): cpu images 0-1, cpu images 2" in split.record["events"]
    assert [r["device"] for r in split.record["device"]["replicas"]] == ["cpu", "cpu"]
    assert {p["replica"] for p in progress} == {0, 1} and max(p["images_done"] for p in progress) >= 1
    assert "loading on cpu..." in stages
    assert read_records(tmp_path / "split" / "jobs.log")[0]["seeds"] == [40, 41, 42]


def test_a_failing_replica_loses_only_its_own_images(engine, second_engine, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise GenerationError("out of memory on cuda:1 at 64x64, 1 image(s) at once")

    monkeypatch.setattr(second_engine, "run", out_of_memory)
    replicas = ReplicaEngine(engines=[engine, second_engine])
    # A failed job raises (every failure does); the saved half of the batch rides on the exception.
    with pytest.raises(GenerationError) as failed:
        generate(out_dir=tmp_path, engine=replicas, prompt="oom", batch=4, seed=7, **SMALL)
    result = failed.value.result
    assert result.status == "failed" and [i["seed"] for i in result.record["images"]] == [7, 8]
    assert len(result.paths) == 2 and all(p.exists() for p in result.paths)
    assert result.record["error"] == ("replica cpu (images 2-3) failed: out of memory on cuda:1 at 64x64, 1 image(s) "
                                      "at once; images 2-3 missing; the others were saved")
    (logged,) = read_records(tmp_path / "jobs.log")
    assert logged["status"] == "failed" and len(logged["images"]) == 2

    monkeypatch.setattr(engine, "run", out_of_memory)
    with pytest.raises(GenerationError, match=r"replica cpu \(images 0\) failed: .*; replica cpu \(images 1\) failed"):
        generate(out_dir=tmp_path, engine=replicas, prompt="all fail", batch=2, seed=7, **SMALL)
    assert read_records(tmp_path / "jobs.log")[-1]["status"] == "failed"


def test_a_replica_that_cannot_load_is_left_out_with_a_warning(engine, tmp_path):
    from sdxl_nb.backends.local import Engine

    broken = Engine(device="cpu")

    def cannot_load(info, on_stage=None):
        raise MemoryError("CUDA out of memory while loading")

    broken.load = cannot_load
    result = generate(out_dir=tmp_path, engine=ReplicaEngine(engines=[engine, broken]), prompt="one left", batch=2,
                      seed=3, **SMALL)
    assert result.status == "ok" and result.seeds == [3, 4]
    assert any("replica cpu could not load tiny-sdxl: CUDA out of memory while loading" in w
               for w in result.record["warnings"])


def test_enable_replicas_makes_them_the_kernels_engine(tmp_path):
    from sdxl_nb.backends.local import get_engine
    from sdxl_nb.backends.replicas import disable_replicas, enable_replicas

    try:
        replicas = enable_replicas("cpu,cpu")
        assert get_engine() is replicas and len(replicas.engines) == 2
        result = generate(out_dir=tmp_path, prompt="kernel", batch=2, seed=1, **SMALL)
        assert result.record["device"]["replicas"] and result.seeds == [1, 2]
    finally:
        disable_replicas()
    assert not isinstance(get_engine(), ReplicaEngine)
