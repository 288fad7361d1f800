"""Engine options: validated, selectable from presets profiles and the API, recorded in every job's env."""

import subprocess

import pytest

from sdxl_nb.config.options import EngineOptions, options_from_dict
from sdxl_nb.config.presets import load_presets, parse_presets
from sdxl_nb.errors import InputError, PresetError
from sdxl_nb.record.joblog import read_records
from tests.conftest import PYTHON, REPO, SMALL, python_env
from tests.test_presets import raw_presets


def test_profiles_ship_in_presets():
    profiles = load_presets(REPO / "presets.json").engine_profiles
    assert profiles["Fast (CUDA)"].options == EngineOptions(channels_last=True, fuse_qkv=True, compile=True, warmup=True)
    assert profiles["Low memory"].options.cpu_offload and profiles["bfloat16"].options.dtype == "bfloat16"


@pytest.mark.parametrize("raw, message", [
    ({"turbo_mode": True}, "unknown option 'turbo_mode'; accepted: dtype, channels_last"),
    ({"dtype": "int8"}, "dtype 'int8' is not accepted; accepted: float16, bfloat16, float32"),
    ({"compile": "yes"}, "compile must be true or false"),
    ({"compile": True, "cuda_graphs": True}, "compile \\(regional\\) and cuda_graphs \\(whole UNet\\) exclude each other"),
])
def test_bad_options_are_one_line(raw, message):
    with pytest.raises(InputError, match=message):
        options_from_dict(raw)


def test_cuda_graphs_profile_ships_and_says_when_it_cannot_apply(engine):
    from sdxl_nb.backends.local.speed import apply_options
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    options = load_presets(REPO / "presets.json").engine_profiles["Fastest (CUDA graphs)"].options
    assert options.cuda_graphs and not options.compile and options.warmup
    pipe = engine.load(find_model("tiny-sdxl", load_presets())).pipe
    assert apply_options(pipe, EngineOptions(cuda_graphs=True), "cpu") == [
        "CUDA graphs not applied: the engine runs on cpu"]
    assert pipe.unet._compiled_call_impl is None


def test_each_new_unet_shape_under_cuda_graphs_is_said_once():
    from types import SimpleNamespace

    from sdxl_nb.backends.base import RunOutput
    from sdxl_nb.backends.local import Engine

    engine = Engine(device="cpu", options=EngineOptions(cuda_graphs=True))
    engine.device = "cuda"  # the bookkeeping only; nothing runs on a device here
    loaded = SimpleNamespace(graph_shapes={(1024, 1024, 2)})  # what the warm-up compiled
    out = RunOutput(images=[], status="ok", generate_s=0.0, peak_memory_bytes=None, scheduler={}, events=[],
                    warnings=[], chunk_size=1)
    guided = SimpleNamespace(width=1024, height=1024, cfg=7.0)
    engine.note_new_graph_shape(loaded, guided, 1, out)
    assert out.events == []
    engine.note_new_graph_shape(loaded, SimpleNamespace(width=832, height=1216, cfg=7.0), 2, out)
    engine.note_new_graph_shape(loaded, SimpleNamespace(width=832, height=1216, cfg=7.0), 2, out)
    engine.note_new_graph_shape(loaded, SimpleNamespace(width=1024, height=1024, cfg=1.0), 1, out)
    assert out.events == [
        "CUDA graphs: first UNet call at 832x1216, batch 4: compiling for this shape (minutes for SDXL; later calls "
        "reuse it)",
        "CUDA graphs: first UNet call at 1024x1024, batch 1: compiling for this shape (minutes for SDXL; later calls "
        "reuse it)"]
    engine.options = EngineOptions()
    engine.note_new_graph_shape(loaded, SimpleNamespace(width=640, height=640, cfg=7.0), 1, out)
    assert len(out.events) == 2


def test_bad_profile_in_presets_names_file_and_key():
    raw = raw_presets()
    raw["engine_profiles"][1]["options"]["fuse"] = True
    with pytest.raises(PresetError, match=r"^/p.json: engine_profiles\[1\]\.options: unknown option 'fuse'"):
        parse_presets(raw, "/p.json")


def test_options_apply_and_are_recorded(tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.jobs.generate import generate

    engine = Engine(device="cpu", options=EngineOptions(channels_last=True, fuse_qkv=True, vae_slicing=True,
                                                        warmup=True))
    result = generate(prompt="tuned", out_dir=tmp_path, engine=engine, seed=1, **SMALL)
    record = result.record
    assert record["env"]["options"]["fuse_qkv"] is True and record["env"]["options"]["channels_last"] is True
    assert any("fused QKV" in e for e in record["events"]) and any("warm-up run" in e for e in record["events"])
    loaded = next(iter(engine.loaded.values()))
    assert {type(p).__name__ for p in loaded.pipe.unet.attn_processors.values()} == {"FusedAttnProcessor2_0"}
    assert engine.configure(EngineOptions(vae_slicing=False)) == [
        "options changed (channels_last, fuse_qkv): loaded models will reload"]
    assert not engine.loaded


def test_vae_savers_toggle_in_place(engine):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    loaded = engine.load(find_model("tiny-sdxl", load_presets()))
    assert engine.configure(EngineOptions(vae_slicing=True, vae_tiling=True)) == []
    assert loaded.pipe.vae.use_slicing and loaded.pipe.vae.use_tiling
    engine.configure(EngineOptions())
    assert not loaded.pipe.vae.use_slicing


def test_api_builds_options_from_a_profile_with_overrides():
    from sdxl_nb.config.engine_profiles import engine_options

    options = engine_options("Fast (CUDA)", compile=False)
    assert options.fuse_qkv and options.channels_last and not options.compile
    assert engine_options() == EngineOptions()
    with pytest.raises(InputError, match="unknown engine profile 'Turbo'; accepted: Default, Fast"):
        engine_options("Turbo")


def test_cuda_graphs_runs_every_pipeline_call_on_one_thread(tmp_path):
    import threading

    from sdxl_nb.backends.local import Engine
    from sdxl_nb.jobs.generate import generate

    engine = Engine(device="cpu", options=EngineOptions(cuda_graphs=True, warmup=True))
    threads = []

    def note_thread(_progress):
        threads.append(threading.current_thread().name)

    generate(prompt="main thread", out_dir=tmp_path, engine=engine, seed=1, on_progress=note_thread, **SMALL)
    worker = threading.Thread(target=generate, kwargs=dict(prompt="another thread", out_dir=tmp_path, engine=engine,
                                                           seed=2, on_progress=note_thread, **SMALL))
    worker.start()
    worker.join()
    assert len(threads) == 4 and len(set(threads)) == 1 and threads[0].startswith("sdxl_nb-cuda-graphs")
    assert [r["status"] for r in read_records(tmp_path / "jobs.log")] == ["ok", "ok"]
    assert engine._graph_thread is not None


def test_an_interrupt_while_waiting_for_the_graph_thread_stops_the_call(tmp_path):
    import signal
    import threading

    from sdxl_nb.backends.local import Engine
    from sdxl_nb.jobs.generate import generate

    engine = Engine(device="cpu", options=EngineOptions(cuda_graphs=True))
    steps = []
    main = threading.main_thread().ident

    def interrupt_the_caller(progress):
        steps.append(progress["step"])
        if progress["step"] == 1:
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C reaches the notebook's thread, not this one
            threading.Event().wait(0.5)  # the caller sets the interrupt flag meanwhile

    with pytest.raises(KeyboardInterrupt):
        generate(prompt="ctrl-c", out_dir=tmp_path, engine=engine, seed=1, on_progress=interrupt_the_caller,
                 width=64, height=64, steps=4)
    assert steps == [1]  # the flag makes diffusers skip every remaining step
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "interrupted" and record["images"] == []
    # The graph thread is free again: the next job runs at once.
    assert generate(prompt="after", out_dir=tmp_path, engine=engine, seed=1, **SMALL).status == "ok"


def test_fp8_is_refused_in_one_line_where_the_device_cannot_run_it(tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.config.engine_profiles import engine_options

    options = engine_options("Fastest FP8 (Hopper)")
    assert options.fp8 and options.cuda_graphs and options.dtype == "bfloat16"
    engine = Engine(device="cpu")
    with pytest.raises(InputError, match="needs an NVIDIA GPU with float8 tensor cores .* runs on cpu") as error:
        engine.configure(options)
    assert "\n" not in str(error.value) and not engine.options.fp8  # nothing changed
    result = subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "x", "--engine-profile",
                             "Fastest FP8 (Hopper)", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                            env=python_env(), timeout=300)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "float8 tensor cores" in result.stderr and not (tmp_path / "out").exists()


def test_fp8_names_what_is_missing_on_a_gpu(monkeypatch):
    import builtins

    import torch

    from sdxl_nb.backends.local.speed import fp8_problem

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _device=None: "NVIDIA RTX A6000")
    assert fp8_problem("cuda:0") == ("the fp8 engine option needs compute capability 8.9 or newer (Ada, Hopper); "
                                     "NVIDIA RTX A6000 has 8.6")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda _device=None: (9, 0))
    real_import = builtins.__import__

    def no_torchao(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchao)
    assert "needs torchao" in fp8_problem("cuda:0")
