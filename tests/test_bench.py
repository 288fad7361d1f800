"""The benchmark's measuring code (figures are checked for shape and invariants, never for speed)."""

import json
import subprocess

import pytest

from tests.conftest import PYTHON, python_env

pytestmark = pytest.mark.slow


def test_full_size_architecture_matches_sdxl_base():
    from sdxl_nb.backends.local.full_size import parameter_counts

    counts = parameter_counts()
    # Published SDXL base 1.0 sizes: UNet 2.567 B, VAE 83.65 M, CLIP ViT-L 123.06 M, OpenCLIP bigG 694.66 M.
    assert counts == {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480,
                      "text_encoder_2": 694_659_840}


def test_unet_work_per_step_is_counted_on_the_meta_device():
    from sdxl_nb.bench.gpu_recipe import unet_tflop_per_step

    # One full-size UNet call at CFG batch 2, 1024x1024: 13.52 TFLOP (the figure docs/PERFORMANCE.md uses).
    assert round(unet_tflop_per_step(), 2) == 13.52
    assert unet_tflop_per_step(512, 512) < unet_tflop_per_step() / 3  # work grows with the pixel count


def test_cpu_checks_report_shared_weights_and_light_imports(engine):
    from sdxl_nb.bench import cpu_checks

    shared = cpu_checks.shared_weights(engine)
    assert shared["shared_extra_param_bytes"] == 0 and shared["shared_dtypes"] == ["torch.float32"]
    swap = cpu_checks.scheduler_swap(engine, repeats=2)
    assert set(swap["scheduler_swap_ms_each"]) >= {"Euler", "DPM++ 2M SDE Karras", "UniPC"}
    imports = cpu_checks.light_imports(repeats=1)
    assert imports["light_import_torch_loaded"] is False and imports["light_import_s"] > 0
    overhead = cpu_checks.generate_overhead(engine, width=64, height=64, steps=2, repeats=1)
    assert overhead["overhead_ratio"] > 0 and overhead["overhead_bare_s"] > 0


def test_product_path_loads_from_a_hub_cache_and_measures(monkeypatch):
    import os

    from sdxl_nb.bench.gpu_checks import FP16_VAE_ID, product_path

    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent/hub")
    lines = []
    result = product_path(device="cpu", architecture="tiny", width=64, height=64, steps=2, repeats=1,
                          on_line=lines.append)
    assert os.environ["HF_HUB_CACHE"] == "/nonexistent/hub"  # the bench's own cache was only borrowed
    assert result["vae"]["id"] == FP16_VAE_ID and result["vae_force_upcast"] is False
    assert result["load_warnings"] == [] and result["job_status"] == "ok" and result["cache_bytes"] > 0
    assert result["overhead_ratio"] > 0 and result["memory_peak_bytes"] > 0
    assert result["memory_estimate_bytes"] > 0 and result["memory_source"]
    assert "stabilityai/stable-diffusion-xl-base-1.0, 64x64, 2 steps" in result["overhead_settings"]
    assert len(lines) == 2 and lines[0].startswith("  loaded stabilityai/stable-diffusion-xl-base-1.0")


def test_vae_decode_precision_compares_native_and_float32():
    import torch

    from sdxl_nb.bench.gpu_checks import vae_decode_precision
    from sdxl_nb.bench.gpu_recipe import build_pipeline

    pipe = build_pipeline("tiny", "cpu", torch.float32)
    pipe.vae.to(torch.bfloat16)
    figures = vae_decode_precision(pipe, width=64, height=64, repeats=1)
    assert figures["vae_dtype"] == "bfloat16" and pipe.vae.dtype == torch.bfloat16  # the upcast is undone
    assert figures["vae_decode_native_finite"] and figures["vae_decode_fp32_upcast_finite"]
    assert figures["vae_decode_native_s"] > 0 and figures["vae_decode_fp32_upcast_s"] > 0


def test_gpu_recipe_code_runs_on_the_tiny_model():
    from sdxl_nb.bench.gpu_recipe import RECIPE, run_recipe

    lines = []
    steps = tuple(name for name in RECIPE if name not in ("+ torch.compile", "+ CUDA graphs"))
    result = run_recipe(device="cpu", architecture="tiny", width=64, height=64, steps=2, repeats=1, recipe=steps,
                        on_line=lines.append)
    assert [row["step"] for row in result["recipe"]] == list(steps)
    *timed, fp8 = result["recipe"]
    assert [row["dtype"] for row in timed][:3] == ["float16", "bfloat16", "float16"]
    assert result["sdpa"]["unet_attention_processors"] == ["AttnProcessor2_0"]
    assert all(row["s_per_image"] > 0 and row["it_per_s"] > 0 for row in timed)
    # No float8 tensor cores on a CPU: the FP8 row says why instead of failing the recipe.
    assert fp8["step"] == "+ FP8" and "needs an NVIDIA GPU with float8 tensor cores" in fp8["skipped"]
    assert len(lines) == len(steps)


def test_bench_gpu_without_cuda_is_one_clear_line():
    result = subprocess.run([PYTHON, "-m", "sdxl_nb", "bench", "--quick", "--gpu"], capture_output=True, text=True,
                            env=python_env(), timeout=600)
    if "CUDA" not in result.stderr:  # a machine with a GPU runs it instead
        pytest.skip("CUDA present")
    assert result.returncode == 2 and result.stdout == ""  # nothing measured or printed first
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.strip().endswith("none is visible (torch.cuda.is_available() is False)")


def test_bench_cli_writes_the_documented_json(tmp_path, monkeypatch):
    from sdxl_nb import bench

    monkeypatch.setitem(bench.SETTINGS, "overhead", ({"width": 64, "height": 64, "steps": 2, "repeats": 1},) * 2)
    monkeypatch.setitem(bench.SETTINGS, "log_lines", (2_000, 2_000))
    monkeypatch.setitem(bench.SETTINGS, "sustained", ({"width": 64, "height": 64, "steps": 2, "repeats": 1,
                                                       "images": 3},) * 2)
    result = bench.run_bench(quick=True, on_line=lambda _line: None)
    bench.write_json(result, tmp_path / "bench.json")
    saved = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    for key in ("overhead_ratio", "sustained_ratio", "shared_extra_param_bytes", "scheduler_swap_ms", "light_import_s",
                "light_import_torch_loaded", "log_load_ratio", "animate_batch_speedup", "lora_switch_ms", "refiner_handoff_ratio",
                "hires_pass_ratio", "device", "env"):
        assert key in saved, key
    assert saved["log_load_lines"] == 2_000 and saved["log_load_ratio"] > 0 and saved["animate_batch_speedup"] > 0
    assert saved["env"]["options"]["compile"] is False
    assert saved["refiner_handoff_ratio"] > 0 and saved["hires_pass_ratio"] > 0
    from sdxl_nb.config.presets import load_presets  # every preset scheduler ran a job (its own step code)

    assert set(saved["scheduler_job_s_each"]) == set(load_presets().schedulers) and saved["scheduler_jobs"] >= 10


def test_lora_switching_is_measured_without_reloads(isolated_env):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.bench.lora_checks import lora_switching

    engine = Engine(device="cpu")  # its own engine: adapters never reach the shared one
    figures = lora_switching(engine, repeats=2)
    assert figures["lora_switch_ms"] > 0 and figures["lora_switch_job_ms"] > 0
    assert [event.split(" (")[0] for event in figures["lora_load_events"]] == ["loaded LoRA tiny-sdxl-lora",
                                                                                "loaded LoRA second"]
    loaded = next(iter(engine.loaded.values()))
    assert loaded.lora.active == () and len(loaded.lora.adapters) == 2  # both stay loaded; none active after


def test_log_loading_falls_back_to_a_size_read_json_can_hold(monkeypatch):
    from sdxl_nb.bench import data_checks

    sizes = []

    def fake(lines, repeats, cap, timeout_s):
        sizes.append(lines)
        return None if lines > 300_000 else {"ratio": 0.6, "ours_s": 6.0, "read_json_s": 10.0, "file_bytes": 1}

    monkeypatch.setattr(data_checks, "_capped_bench_load", fake)
    result = data_checks.log_loading(1_000_000, 3)
    assert sizes == [1_000_000, 300_000]
    assert result["log_load_lines"] == 300_000 and result["log_load_ratio"] == 0.6
    assert "at 1,000,000 lines the comparison ran out of memory" in result["log_load_notes"][0]
