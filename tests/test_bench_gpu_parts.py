"""The GPU bench parts and the one device script, run on the tiny architecture on the CPU (same code as on the GPU;
figures are checked for shape, never for speed)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, python_env

pytestmark = pytest.mark.slow

SUSTAINED_KEYS = {"batch", "images", "calls", "sdxl_nb_s", "bare_s", "sdxl_nb_images_per_s", "bare_images_per_s",
                  "ratio", "first_call_s", "capture_s"}


@pytest.fixture(scope="module")
def tiny_parts():
    """product, fastest and stages on one tiny hub cache, with the figures handed back after each part."""
    from sdxl_nb.bench.gpu_run import run_gpu_parts

    snapshots, lines = [], []
    figures = run_gpu_parts(("product", "fastest", "stages"), architecture="tiny", on_line=lines.append,
                            on_part=lambda f: snapshots.append(json.loads(json.dumps(f, default=str))))
    return figures, snapshots, lines


def test_parts_run_in_order_and_hand_back_their_figures_after_each(tiny_parts):
    figures, snapshots, lines = tiny_parts
    assert figures["errors"] == {} and figures["parts_done"] == ["product", "fastest", "stages"]
    done = [s["parts_done"] for s in snapshots]
    assert done[-1] == ["product", "fastest", "stages"] and done.count(["product"]) > 1
    # Within a part too: the fastest part's per-job figures are handed back before its sustained rows.
    halfway = [s["fastest"] for s in snapshots if s["parts_done"] == ["product"] and "fastest" in s]
    assert halfway[0]["sustained"] == [] and [len(f["sustained"]) for f in halfway][-3:] == [1, 2, 3]
    assert "job_ratio" in halfway[1]
    assert set(figures["parts_s"]) == {"product", "fastest", "stages"} and min(figures["parts_s"].values()) > 0
    assert figures["architecture"] == "tiny" and figures["device"] == "cpu" and figures["diffusers"]
    assert figures["cache"]["cache_bytes"] > 0  # one cache, written once for the three parts
    assert sum("wrote the random-weight hub cache" in line for line in lines) == 1
    assert figures["product_path"]["job_status"] == "ok" and figures["product_path"]["overhead_ratio"] > 0


def test_fastest_part_runs_the_presets_profile_per_job_and_per_batch(tiny_parts):
    from sdxl_nb.bench.fastest import FASTEST_PROFILE
    from sdxl_nb.config.engine_profiles import engine_options

    fastest = tiny_parts[0]["fastest"]
    assert fastest["profile"] == FASTEST_PROFILE and fastest["options"] == engine_options(FASTEST_PROFILE).record()
    assert fastest["options"]["cuda_graphs"] is True
    assert "CUDA graphs not applied: the engine runs on cpu" in fastest["load_events"]
    assert fastest["cuda_graphs_applied"] is False and fastest["warmup_s"] > 0  # the profile warms up at load
    assert fastest["job_ratio"] > 0 and fastest["capture_s"] >= 0 and fastest["job_first_s"] > 0
    rows = fastest["sustained"]
    assert [row["batch"] for row in rows] == [1, 4, 8]
    for row in rows:
        assert set(row) == SUSTAINED_KEYS
        assert row["calls"] * row["batch"] == row["images"] == 8 and row["ratio"] > 0 and row["capture_s"] >= 0


def test_stages_part_times_refiner_hires_and_lora_switching_on_the_bench_models(tiny_parts):
    from sdxl_nb.bench.gpu_models import REFINER_ID
    from sdxl_nb.config.tiny_lora import tiny_layers

    stages = tiny_parts[0]["stages"]
    assert stages["refiner"] == REFINER_ID and stages["refiner_handoff_ratio"] > 0 and stages["hires_pass_ratio"] > 0
    # The refiner written beside the base shares its VAE and second text encoder, as the real pair does.
    assert sorted(stages["refiner_shared"]) == ["text_encoder_2", "vae"] and stages["refiner_extra_bytes"] > 0
    assert "x1.5 Latent, 2 steps at denoise 0.5" in stages["stage_settings"]
    assert stages["lora_rank"] == 8 and stages["lora_layers"] == len(tiny_layers()["unet"])
    assert [e.split(" (")[0] for e in stages["lora_load_events"]] == ["loaded LoRA bench-lora-1",
                                                                      "loaded LoRA bench-lora-2"]
    assert stages["lora_switch_ms"] > 0 and stages["lora_switch_job_ms"] > 0


def test_recipe_part_leaves_the_compiling_steps_out_on_the_tiny_architecture(monkeypatch):
    from sdxl_nb.bench import gpu_recipe
    from sdxl_nb.bench.gpu_run import run_gpu_parts

    seen = {}
    monkeypatch.setattr(gpu_recipe, "run_recipe", lambda **kwargs: seen.update(kwargs) or kwargs["into"].update(recipe=[]))
    figures = run_gpu_parts(("recipe",), architecture="tiny", on_line=lambda _line: None)
    assert figures["parts_done"] == ["recipe"] and figures["recipe"] == []
    assert "+ CUDA graphs" not in seen["recipe"] and "+ FP8" in seen["recipe"] and seen["architecture"] == "tiny"


@pytest.mark.parametrize("text, parts", [
    (None, ("product", "fastest", "stages", "recipe")),
    ("stages", ("stages",)),
    ("fastest, stages,fastest", ("fastest", "stages")),
    ("recipe,product", ("recipe", "product")),
])
def test_gpu_parts_keep_the_order_given(text, parts):
    from sdxl_nb.bench.gpu_run import parse_parts

    assert parse_parts(text) == parts


@pytest.mark.parametrize("text", ["", " , ", "fastest,bogus", "Fastest", "all"])
def test_bad_gpu_parts_are_one_line_naming_what_is_accepted(text):
    from sdxl_nb.bench.gpu_run import parse_parts
    from sdxl_nb.errors import InputError

    with pytest.raises(InputError) as caught:
        parse_parts(text)
    message = str(caught.value)
    assert "\n" not in message and message.endswith("accepted: a comma list of product, fastest, stages, recipe")


@pytest.mark.parametrize("args", [["--gpu-parts", "fastest,bogus"], ["--gpu-tiny", "--gpu-images", "6"]])
def test_bench_cli_refuses_bad_gpu_options_in_one_line_and_writes_nothing(tmp_path, args):
    target = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "sdxl_nb", "bench", "--gpu-only", *args, "--json", str(target)],
                            capture_output=True, text=True, env=python_env(), timeout=300)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "accepted" in result.stderr
    assert result.stdout == "" and not target.exists()


def test_a_failing_part_keeps_the_earlier_parts_figures_in_the_json(tmp_path, monkeypatch, capsys):
    from sdxl_nb import cli
    from sdxl_nb.bench import gpu_run

    target = tmp_path / "bench.json"
    on_disk = {}

    def product(*args):
        args[-2]["product_path"] = {"overhead_ratio": 0.99}

    def fastest(*_args):
        on_disk.update(json.loads(target.read_text(encoding="utf-8")))  # already written when this part starts
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(gpu_run.RUNNERS, "product", product)
    monkeypatch.setitem(gpu_run.RUNNERS, "fastest", fastest)
    code = cli.main(["bench", "--gpu-only", "--gpu-tiny", "--gpu-parts", "product,fastest", "--json", str(target)])
    assert code == 1  # the figures are written, and the exit status says a part failed
    assert on_disk["gpu"]["parts_done"] == ["product"] and on_disk["gpu"]["product_path"]["overhead_ratio"] == 0.99
    saved = json.loads(target.read_text(encoding="utf-8"))["gpu"]
    assert saved["parts_done"] == ["product"] and saved["product_path"] == {"overhead_ratio": 0.99}
    assert saved["errors"] == {"fastest": "CUDA error: an illegal memory access was encountered"}
    assert set(saved["parts_s"]) == {"product", "fastest"}
    err = capsys.readouterr().err
    assert "GPU part fastest failed: CUDA error: an illegal memory access" in err
    assert not list(tmp_path.glob(".*.writing"))  # the JSON is replaced whole, never left half-written


def test_a_time_limit_keeps_what_the_cut_part_had_measured(tmp_path, monkeypatch):
    from sdxl_nb.bench import gpu_run, run_bench

    target = tmp_path / "bench.json"

    def fastest(cache, device, architecture, settings, on_line, figures, checkpoint):
        figures["fastest"] = {"job_ratio": 1.01, "sustained": []}
        checkpoint()
        raise KeyboardInterrupt  # what `timeout --signal=INT` delivers mid-part

    monkeypatch.setitem(gpu_run.RUNNERS, "fastest", fastest)
    with pytest.raises(KeyboardInterrupt):
        run_bench(gpu_only=True, gpu_tiny=True, gpu_parts="fastest", json_path=target, on_line=lambda _line: None)
    saved = json.loads(target.read_text(encoding="utf-8"))["gpu"]
    assert saved["fastest"] == {"job_ratio": 1.01, "sustained": []} and saved["parts_done"] == []
    assert saved["errors"]["fastest"].startswith("interrupted after")


def test_full_size_refiner_matches_the_public_refiner_and_fits_the_base():
    from sdxl_nb.backends.local.full_size import CLIP_BIGG_CONFIG
    from sdxl_nb.bench.gpu_models import REFINER_UNET_CONFIG, refiner_parameter_count

    # SDXL refiner 1.0's fp16 UNet file is 4.52 GB: 2.26 B parameters.
    assert refiner_parameter_count() == 2_259_526_660
    # It reads OpenCLIP bigG alone (the base's second encoder) and five time ids (sizes, crop, aesthetic score).
    assert REFINER_UNET_CONFIG["cross_attention_dim"] == CLIP_BIGG_CONFIG["hidden_size"]
    assert REFINER_UNET_CONFIG["projection_class_embeddings_input_dim"] == (
        5 * REFINER_UNET_CONFIG["addition_time_embed_dim"] + CLIP_BIGG_CONFIG["projection_dim"])


def test_device_script_tiny_mode_runs_end_to_end(tmp_path):
    """scripts/gpu-bench.sh --tiny: versions, the bench under its time limit, the JSON and the log in $OUT."""
    out = tmp_path / "out"
    env = python_env({"OUT": str(out), "PYTHON": sys.executable, "GPU_BENCH_TIMEOUT": "120"})
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu-bench.sh"), "--tiny", "fastest"], capture_output=True,
                            text=True, env=env, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    saved = json.loads((out / "bench-gpu.json").read_text(encoding="utf-8"))
    assert saved["gpu"]["parts_done"] == ["fastest"] and saved["gpu"]["architecture"] == "tiny"
    assert [row["batch"] for row in saved["gpu"]["fastest"]["sustained"]] == [1, 4, 8]
    assert "overhead_ratio" not in saved  # --gpu-only: no CPU figures
    log = (out / "bench-gpu.log").read_text(encoding="utf-8")
    assert "diffusers " in log and "torch " in log and "gpu-bench: exit 0" in log


def test_device_script_refuses_an_unknown_option(tmp_path):
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu-bench.sh"), "--fast"], capture_output=True, text=True,
                            env=python_env({"OUT": str(tmp_path)}), timeout=60)
    assert result.returncode == 2 and "unknown option --fast" in result.stderr
    assert not (tmp_path / "bench-gpu.json").exists()


@pytest.mark.skipif(not os.path.isdir(REPO / ".whl"), reason="scripts/gpu-wheels.sh has not run here")
def test_prepared_wheels_are_one_version_each_and_small():
    wheels = sorted((REPO / ".whl").glob("*.whl"))
    names = [w.name.split("-")[0].lower() for w in wheels]
    assert len(names) == len(set(names)) and {"diffusers", "torchao"} <= set(names)
    assert sum(w.stat().st_size for w in wheels) < 32 * 2**20


def test_gpu_bench_imports_nothing_the_device_image_lacks_beyond_the_carried_wheels(tmp_path):
    """scripts/gpu_import_check.py hides every package the GPU machine's image lacks (except the wheels
    gpu-wheels.sh carries) and runs the GPU parts: they must still run, or the device run would fail at import."""
    target = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_import_check.py"), "bench", "--gpu-tiny",
                             "--gpu-only", "--gpu-parts", "product,fastest,stages", "--json", str(target)],
                            capture_output=True, text=True, env=python_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(target.read_text(encoding="utf-8"))["gpu"]["errors"] == {}
    assert "gpu_import_check: hidden modules looked for:" in result.stderr


def test_gpu_wheels_carry_what_the_import_check_allows():
    import re

    wheels = (REPO / "scripts" / "gpu-wheels.sh").read_text(encoding="utf-8")
    downloaded = set(re.findall(r'"(\w+)==\$', wheels))
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gpu_import_check
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert downloaded == set(gpu_import_check.CARRIED) == {"diffusers", "torchao"}
