"""The memory model: estimates (tables), calibration from jobs.log, advice, and the warning before a run."""

import pytest

from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.memory import (
    GIB,
    MIB,
    OVERHEAD_BYTES,
    MemoryRequest,
    advise,
    calibrate,
    estimate_peak,
    nominal_component_bytes,
)

SDXL16 = nominal_component_bytes("float16")
WEIGHTS16 = sum(SDXL16.values())


def request(**changes):
    fields = dict(component_bytes=SDXL16, dtype="float16", width=1024, height=1024, images_at_once=1, cfg=7.0)
    return MemoryRequest(**{**fields, **changes})


def test_nominal_sdxl_weights_are_about_6_5_gib_in_float16():
    assert 6.4 * GIB < WEIGHTS16 < 6.5 * GIB
    assert sum(nominal_component_bytes("float32").values()) == 2 * WEIGHTS16


@pytest.mark.parametrize("changes, weights, activation", [
    ({}, WEIGHTS16, 1500 * 2 * 1024 * 1024),  # the VAE decode is the peak for one image
    ({"images_at_once": 4}, WEIGHTS16, 4 * 1500 * 2 * 1024 * 1024),
    ({"images_at_once": 4, "vae_slicing": True}, WEIGHTS16, 4 * 360 * 2 * 2 * 1024 * 1024),  # then the UNet is
    ({"vae_float32": True}, WEIGHTS16, 1500 * 4 * 1024 * 1024),  # an upcast VAE decodes in float32
    ({"width": 2048, "vae_tiling": True}, WEIGHTS16, 1500 * 2 * 1024 * 1024),  # tiles cap the decode
    ({"offload": "model"}, SDXL16["unet"], 1500 * 2 * 1024 * 1024),  # one component resident
    ({"offload": "sequential"}, SDXL16["unet"] // 20, 1500 * 2 * 1024 * 1024),
    ({"dtype": "float32", "component_bytes": nominal_component_bytes("float32")}, 2 * WEIGHTS16,
     1500 * 4 * 1024 * 1024),
])
def test_fallback_estimates(changes, weights, activation):
    estimate = estimate_peak(request(**changes))
    assert (estimate.weights_bytes, estimate.activation_bytes) == (weights, activation)
    assert estimate.peak_bytes == weights + OVERHEAD_BYTES + activation
    assert estimate.source == "fallback constants"


def test_guidance_doubles_the_unet_batch():
    sliced = dict(width=2048, height=2048, images_at_once=2, vae_slicing=True, vae_tiling=True)
    assert estimate_peak(request(cfg=7, **sliced)).activation_bytes == 2 * estimate_peak(request(cfg=0, **sliced)).activation_bytes


def test_sdxl_1024_in_float16_is_about_10_gib():
    # Public measurements of diffusers SDXL at 1024x1024 in fp16 report ~10-11 GB at the peak.
    assert 9 * GIB < estimate_peak(request()).peak_bytes < 11.5 * GIB


def record(peak, width=64, height=64, batch=1, **changes):
    base = {"status": "ok", "model": {"id": "m", "dtype": "float16"}, "device": {"name": "GPU X"},
            "width": width, "height": height, "batch": batch, "chunk_size": batch, "peak_memory_bytes": peak}
    return {**base, **changes}


WEIGHTS = 1000 * MIB


def line(pixels_times_images):  # the truth the records are drawn from: 100 MiB + 500 bytes per pixel
    return WEIGHTS + 100 * MIB + 500 * pixels_times_images


@pytest.mark.parametrize("records, expected", [
    ([], None),
    ([record(line(4096)), record(line(4096))], None),  # too few
    ([record(line(4096), status="failed")] * 5, None),
    ([record(line(4096), device={"name": "other"})] * 5, None),
    ([record(line(4096), model={"id": "m", "dtype": "float32"})] * 5, None),
    ([record(line(4096), auto_tune={"chunks": [1]})] * 5, None),  # tuned runs hold other things resident
])
def test_calibration_needs_enough_matching_records(records, expected):
    assert calibrate(records, model_id="m", dtype="float16", device_name="GPU X", weights_bytes=WEIGHTS) is expected


def test_calibration_fits_the_recorded_peaks_and_stays_above_them():
    sizes = [(64, 64, 1), (128, 128, 1), (128, 128, 4), (256, 128, 2)]
    records = [record(line(w * h * b), w, h, b) for w, h, b in sizes]
    records[1]["peak_memory_bytes"] += 200 * 1024  # measurements are noisy
    cal = calibrate(records, model_id="m", dtype="float16", device_name="GPU X", weights_bytes=WEIGHTS)
    assert cal.records == 4 and cal.device == "GPU X"
    assert 485 < cal.bytes_per_pixel < 515
    assert 100 * MIB <= cal.overhead_bytes < 102 * MIB
    components = {"unet": WEIGHTS}
    for w, h, b in sizes:  # the calibrated line errs high: never below what was measured
        estimate = estimate_peak(request(component_bytes=components, width=w, height=h, images_at_once=b), cal)
        assert estimate.peak_bytes >= line(w * h * b)
    estimate = estimate_peak(request(component_bytes=components, width=1024, height=1024), cal)
    assert estimate.source == "calibrated from 4 jobs.log records on GPU X"
    assert abs(estimate.peak_bytes - line(1024 * 1024)) < 6 * MIB


def test_one_size_only_calibrates_the_slope_with_the_fallback_overhead():
    records = [record(WEIGHTS + OVERHEAD_BYTES + 700 * 4096)] * 3
    cal = calibrate(records, model_id="m", dtype="float16", device_name="GPU X", weights_bytes=WEIGHTS)
    assert cal.bytes_per_pixel == pytest.approx(700) and cal.overhead_bytes == OVERHEAD_BYTES


@pytest.mark.parametrize("free_gib, changes, risky, suggestion", [
    (40, {"images_at_once": 2}, False, (1024, 1024, 2)),
    (5, {"images_at_once": 2}, True, (1024, 1024, 1)),  # fewer images at once first
    (2, {}, True, (640, 640, 1)),  # then the largest smaller size, same aspect, multiples of 64
    (2, {"width": 1344, "height": 768}, True, (896, 512, 1)),
    (0.3, {}, True, None),  # nothing fits: offload
])
def test_advice_for_a_loaded_model(free_gib, changes, risky, suggestion):
    m = request(**changes)
    advice = advise(m, int(free_gib * GIB), in_use_bytes=WEIGHTS16)
    assert advice.risky is risky
    assert advice.suggestion == suggestion
    assert advice.needed_bytes == advice.estimate.peak_bytes - WEIGHTS16
    if risky:
        assert advice.message.startswith("memory: this job needs about ")
        assert f"but only {free_gib * GIB / GIB:.1f} GiB is free" in advice.message
        assert "a generic estimate" in advice.message and "fallback constants" not in advice.message
        if suggestion:
            w, h, n = suggestion
            assert f"suggested: {w}x{h} with {n} image(s) at once" in advice.message
            assert "chunk_size" not in advice.message  # the lab's words, not the API's
        else:
            assert "use CPU offload" in advice.message
    else:
        assert advice.message == ""


def test_before_loading_the_weights_count_too():
    m = request()
    assert not advise(m, 8 * GIB, in_use_bytes=WEIGHTS16).risky
    assert advise(m, 8 * GIB, in_use_bytes=0).risky


def test_a_risky_request_is_warned_before_the_run_and_recorded(run, engine, tmp_path, monkeypatch):
    real = engine.memory_facts
    monkeypatch.setattr(engine, "memory_facts", lambda loaded: {**real(loaded), "free_bytes": 1 * MIB})
    order = []
    result = run(prompt="tight", batch=2, on_warning=lambda w: order.append(("warning", w)),
                 on_progress=lambda p: order.append(("progress", p["step"])), out_dir=tmp_path)
    warnings = [w for kind, w in order if kind == "warning" and w.startswith("memory: ")]
    assert len(warnings) == 1 and "but only 0.0 GiB is free" in warnings[0]
    assert order.index(("warning", warnings[0])) < order.index(("progress", 1))
    assert warnings[0] in result.record["warnings"]
    check = result.record["memory_check"]
    assert check["risky"] is True and check["free_bytes"] == MIB and check["source"] == "fallback constants"


def test_the_estimate_calibrates_itself_from_this_folders_jobs(run, tmp_path):
    for size in (64, 96, 128):
        first = run(prompt="calibrate", width=size, height=size, out_dir=tmp_path)
    assert first.record["memory_check"]["source"] == "fallback constants"
    assert first.record["memory_check"]["risky"] is False  # plenty of RAM for the tiny model
    device = first.record["device"]["name"]
    result = run(prompt="calibrated", out_dir=tmp_path)
    assert result.record["memory_check"]["source"] == f"calibrated from 3 jobs.log records on {device}"
    # The calibrated line lies above what was measured at the same size (the 64x64 job).
    measured = read_records(tmp_path / "jobs.log")[0]
    assert (measured["width"], result.record["width"]) == (64, 64)
    assert result.record["memory_check"]["estimate_bytes"] >= measured["peak_memory_bytes"]
