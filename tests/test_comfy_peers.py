"""The ComfyUI backend against ComfyUI 0.3.64's answers (the fake server's `version` knob): combo inputs in both
/object_info forms, progress over every sampler of a job, the refiner checkpoint on every job verb, the ControlNet
note, audits of ComfyUI jobs, refusals before any work, and one declared list of what ComfyUI runs."""

import json
from types import SimpleNamespace

import pytest

from sdxl_nb.backends.comfy.backend import ComfyBackend, generate_remote
from sdxl_nb.backends.comfy.client import ComfyClient, combo_options
from sdxl_nb.cli import main
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.errors import InputError, ModelUnavailableError
from sdxl_nb.record.joblog import read_records
from tests.conftest import SMALL
from tests.fake_comfy import FakeComfy
from tests.local_server import LocalServer
from tests.tiny_upscaler import write_tiny_upscaler

CKPT = "sd_xl_base_1.0.safetensors"
VERSIONS = ["0.3.40", "0.3.64"]  # the older [[names], {}] combo form, and the newer ["COMBO", {"options": [...]}]
HIRES = dict(hires_scale=2, hires_steps=2, hires_denoise=0.5)


@pytest.fixture
def upscalers(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("upscalers")
    write_tiny_upscaler(folder / "tiny-compact.safetensors", scale=2)
    monkeypatch.setenv("SDXL_NB_UPSCALERS", str(folder))
    return folder


def one_line_exit_2(capsys, code) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ---- 1. both /object_info forms; a missing file of any kind refused before any work ----
def test_combo_options_reads_both_forms_and_nothing_else():
    # comfy_api's add_to_dict_v1: (i.get_io_type(), i.as_dict()) with Combo.Input.as_dict() holding "options".
    assert combo_options([["a.safetensors", "b.safetensors"], {}]) == ["a.safetensors", "b.safetensors"]
    assert combo_options([["a.safetensors"]]) == ["a.safetensors"]
    assert combo_options(["COMBO", {"options": ["a.safetensors"], "multiselect": False}]) == ["a.safetensors"]
    for unlisted in (["COMBO", {"remote": {"route": "/x"}}], ["INT", {"default": 1}], ["*"], [], None, "COMBO",
                     ["COMBO", {"options": "a"}]):
        assert combo_options(unlisted) is None, unlisted


@pytest.mark.parametrize("version", VERSIONS)
def test_every_loader_list_is_read_in_either_form(version):
    fake = FakeComfy(version=version, loras=["style.safetensors"], upscale_models=["4x.pth"])
    with LocalServer(fake.app()) as server:
        client = ComfyClient(server.url)
        assert client.choices("CheckpointLoaderSimple", "ckpt_name") == [CKPT]
        assert client.choices("LoraLoader", "lora_name") == ["style.safetensors"]
        assert client.choices("ControlNetLoader", "control_net_name") == ["tiny-sdxl-controlnet.safetensors"]
        assert client.choices("UpscaleModelLoader", "model_name") == ["4x.pth"]
        assert client.choices("VAELoader", "vae_name") == ["sdxl-vae-fp16-fix.safetensors"]
        client.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_a_missing_upscaler_checkpoint_or_refiner_is_exit_2_before_any_work(version, upscalers, tmp_path,
                                                                                capsys):
    fake = FakeComfy(version=version, checkpoints=[CKPT, "other.safetensors"], upscale_models=[])
    with LocalServer(fake.app()) as server:
        base = ["generate", "--prompt", "a fox", "--width", "64", "--height", "64", "--steps", "2", "--seed", "1",
                "--backend", "comfy", "--comfy-url", server.url, "--comfy-checkpoint", CKPT,
                "--out", str(tmp_path / "out")]
        err = one_line_exit_2(capsys, main([*base, "--hires-scale", "2", "--hires-upscaler", "tiny-compact"]))
        assert "upscaler tiny-compact.safetensors is not on the ComfyUI server" in err and "models/upscale_models" in err
        err = one_line_exit_2(capsys, main([*base, "--refiner", TINY_REFINER_ID]))
        assert f"refiner checkpoint {TINY_REFINER_ID}.safetensors is not on the ComfyUI server" in err
        assert "models/checkpoints" in err and "other.safetensors" in err
        err = one_line_exit_2(capsys, main([*base[:-4], "--comfy-checkpoint", "gone.safetensors",
                                            "--out", str(tmp_path / "out")]))
        assert "checkpoint 'gone.safetensors' is not on the ComfyUI server" in err
    assert fake.prompts == {} and not any(path == "/prompt" for _m, path in fake.requests)
    assert not (tmp_path / "out").exists()


def test_embeddings_the_server_lists_are_checked_by_name(tmp_path):
    backend = ComfyBackend.__new__(ComfyBackend)
    fake = FakeComfy(version="0.3.64", embeddings=["easynegative"])
    with LocalServer(fake.app()) as server:
        backend.client = ComfyClient(server.url)
        resolved = SimpleNamespace(embeddings=[SimpleNamespace(name="easynegative")])
        backend._check_embeddings(resolved)  # listed: nothing said
        resolved.embeddings.append(SimpleNamespace(name="badhands"))
        with pytest.raises(ModelUnavailableError, match=r"embedding badhands is not on the ComfyUI server .*"
                                                        r"\(models/embeddings\); available: easynegative"):
            backend._check_embeddings(resolved)
        fake.embeddings = None  # a server without GET /embeddings is not asked
        backend._check_embeddings(resolved)


# ---- 2. progress counts on across samplers, as the local engine does ----
def test_hires_progress_counts_on_across_both_samplers_as_locally(upscalers, run, tmp_path):
    fake = FakeComfy(version="0.3.64")
    remote_steps, local_steps = [], []
    with LocalServer(fake.app()) as server:
        result = generate_remote(url=server.url, checkpoint=CKPT, out_dir=tmp_path / "remote", prompt="a fox",
                                 seed=4, hires_upscaler="Latent", on_progress=remote_steps.append, **SMALL, **HIRES)
    assert result.status == "ok"
    run(prompt="a fox", seed=4, hires_upscaler="Latent", out_dir=tmp_path / "local", on_progress=local_steps.append,
        **HIRES)
    pairs = [(p["step"], p["total"]) for p in remote_steps]
    steps = [step for step, _total in pairs]
    assert steps == sorted(steps), steps  # never back to 1 when the hires pass starts
    total = SMALL["steps"] + HIRES["hires_steps"]
    assert {t for _s, t in pairs} == {total} and steps[-1] == total
    assert local_steps[-1]["total"] == total and local_steps[-1]["step"] == total  # the local engine's count


def test_refiner_progress_counts_on_from_the_base_to_the_refiner(tmp_path):
    fake = FakeComfy(checkpoints=("tiny-sdxl.safetensors", f"{TINY_REFINER_ID}.safetensors"), version="0.3.64")
    seen = []
    with LocalServer(fake.app()) as server:
        result = generate_remote(url=server.url, prompt="a fox", width=64, height=64, steps=4, seed=2,
                                 refiner=TINY_REFINER_ID, refiner_switch=0.5, out_dir=tmp_path, model="tiny-sdxl",
                                 on_progress=seen.append)
    assert result.status == "ok"
    (sent,) = fake.prompts.values()
    from sdxl_nb.backends.comfy.progress import graph_sampler_steps

    total = sum(graph_sampler_steps(sent["graph"]).values())
    steps = [p["step"] for p in seen]
    assert len(graph_sampler_steps(sent["graph"])) == 2 and steps == sorted(steps) and steps[-1] == total
    assert {p["total"] for p in seen} == {total}


def test_sampler_progress_without_node_names_still_counts_on():
    from sdxl_nb.backends.comfy.progress import SamplerProgress

    counter = SamplerProgress({"1": {"class_type": "KSampler", "inputs": {"steps": 3}},
                               "2": {"class_type": "KSampler", "inputs": {"steps": 2}}})
    assert [counter.update(v, m, None) for v, m in ((1, 3), (2, 3), (3, 3), (1, 2), (2, 2))] == [
        (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


# ---- 3. --comfy-refiner-checkpoint on generate (and the lab) ----
def test_cli_generate_takes_the_refiner_checkpoint_and_records_it(tmp_path, capsys):
    fake = FakeComfy(checkpoints=("tiny-sdxl.safetensors", "my-refiner.safetensors"), version="0.3.64")
    with LocalServer(fake.app()) as server:
        code = main(["generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                     "--steps", "4", "--seed", "1", "--refiner", TINY_REFINER_ID, "--refiner-switch", "0.5",
                     "--backend", "comfy", "--comfy-url", server.url, "--comfy-checkpoint", "tiny-sdxl.safetensors",
                     "--comfy-refiner-checkpoint", "my-refiner.safetensors", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    (sent,) = fake.prompts.values()
    loaded = sorted(n["inputs"]["ckpt_name"] for n in sent["graph"].values()
                    if n["class_type"] == "CheckpointLoaderSimple")
    assert loaded == ["my-refiner.safetensors", "tiny-sdxl.safetensors"]
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["backend"]["refiner_checkpoint"] == "my-refiner.safetensors"
    capsys.readouterr()
    err = one_line_exit_2(capsys, main(["generate", "--prompt", "a fox", "--comfy-refiner-checkpoint", "x",
                                        "--out", str(tmp_path / "local")]))
    assert "need --backend comfy" in err and not (tmp_path / "local").exists()


def test_the_lab_backend_setting_takes_the_refiner_checkpoint(engine, tmp_path):
    pytest.importorskip("ipywidgets")
    from tests.ui_helpers import lab_for

    with LocalServer(FakeComfy().app()) as server:
        lab = lab_for(engine, tmp_path / "out")
        settings = lab.settings
        settings.backend.value = "ComfyUI"
        settings.comfy_url.value, settings.comfy_checkpoint.value = server.url, CKPT
        settings.comfy_refiner_checkpoint.value = "my-refiner.safetensors"
        settings.apply.click()
        assert "on ComfyUI at" in settings.status.value
        assert lab.queue._chosen_backend().refiner_checkpoint == "my-refiner.safetensors"


# ---- 4. the ControlNet note names the file as the server lists it ----
def test_controlnet_note_names_the_file_the_server_lists(tmp_path):
    from sdxl_nb.backends.comfy.control_nodes import controlnet_file_name, placement_note

    folder = tmp_path / "controlnet-canny-sdxl-1.0"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    unit = SimpleNamespace(model="diffusers/controlnet-canny-sdxl-1.0", model_path=str(folder), model_source="test")
    note = placement_note(unit)
    # ComfyUI's folder_paths key "controlnet" lists models/controlnet's files, a sub-folder's as "sub/file": the note
    # says to copy the weights file to the name the workflow loads, not to put the folder there.
    assert controlnet_file_name(unit) == "controlnet-canny-sdxl-1.0.safetensors"
    assert note.endswith(f"copy {folder / 'diffusion_pytorch_model.safetensors'} to ComfyUI's "
                         "models/controlnet/controlnet-canny-sdxl-1.0.safetensors")
    single = SimpleNamespace(model="cn", model_path=str(folder / "diffusion_pytorch_model.safetensors"),
                             model_source="test")
    assert placement_note(single).endswith("put " + single.model_path + " in ComfyUI's models/controlnet folder")


def test_a_missing_controlnet_names_the_servers_folders():
    from sdxl_nb.backends.comfy.control_nodes import missing_controlnets

    client = SimpleNamespace(server="http://comfy", choices=lambda node, name: ["other.safetensors"])
    unit = SimpleNamespace(model="cn", model_path="/m/cn.safetensors", model_source="test", preprocessor="none")
    with pytest.raises(ModelUnavailableError, match=r"ControlNet cn.safetensors is not on the ComfyUI server "
                                                    r"http://comfy \(models/controlnet or models/t2i_adapter\)"):
        missing_controlnets(client, SimpleNamespace(controlnets=[unit]))


# ---- 5. audits of ComfyUI jobs ----
def test_audit_never_compares_a_comfy_job_with_local_diffusers_nor_calls_it_rerun(tmp_path, monkeypatch, capsys):
    from sdxl_nb.audit.report import run_audit

    fake = FakeComfy(version="0.3.40")
    out = tmp_path / "out"
    with LocalServer(fake.app()) as server:
        generate_remote(url=server.url, checkpoint=CKPT, out_dir=out, prompt="a fox", seed=5, **SMALL)
        monkeypatch.delenv("SDXL_NB_COMFY_URL", raising=False)
        assert run_audit(out).environment_drift.empty  # no "diffusers None -> x": not this machine's libraries
        capsys.readouterr()
        assert main(["audit", str(out), "--rerun", "all"]) == 0
        captured = capsys.readouterr()
        assert "re-running job" not in captured.err
        assert f"not re-run (made on ComfyUI server {server.url})" in captured.err
        assert "bit-exact" not in captured.out.splitlines()[-1]
        assert f"not re-run (made on ComfyUI server {server.url})" in captured.out.splitlines()[-1]
        # Re-run on its server: the drift compared is the server's (ComfyUI 0.3.40 -> 0.3.64), never diffusers.
        fake.version = "0.3.64"
        monkeypatch.setenv("SDXL_NB_COMFY_URL", server.url)
        report = run_audit(out, rerun="all")
        (drift,) = set(report.reruns["drift"])
        assert "comfyui 0.3.40 -> 0.3.64" in drift and "diffusers" not in drift
        assert list(report.reruns["verdict"]) == ["bit-exact"]
        assert main(["audit", str(out), "--rerun", "all"]) == 0
        assert f"on ComfyUI server {server.url}" in capsys.readouterr().err


# ---- 6. IP-Adapter refused before anything is built ----
def test_an_ip_adapter_request_is_refused_before_the_adapter_is_built(tmp_path, monkeypatch):
    from PIL import Image

    import sdxl_nb.config.tiny_ip_adapter as tiny
    from sdxl_nb.jobs.generate import generate

    def built(*_a, **_k):
        raise AssertionError("the tiny IP-Adapter was built for a request the backend refuses")

    monkeypatch.setattr(tiny, "ensure_demo_ip_adapter", built)
    ref = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), "teal").save(ref)
    fake = FakeComfy(version="0.3.64")
    with LocalServer(fake.app()) as server:
        backend = ComfyBackend(server.url, checkpoint=CKPT)
        with pytest.raises(InputError, match="cannot run IP-Adapter") as refused:
            generate(out_dir=tmp_path / "out", engine=backend, prompt="a fox", ip_adapter="tiny-sdxl-ip-adapter",
                     ip_images=[str(ref)], **SMALL)
    assert "\n" not in str(refused.value) and fake.requests == [] and not (tmp_path / "out").exists()


# ---- 7. one declared list: what ComfyUI runs and what it does not ----
def test_the_refusal_names_everything_comfy_runs_and_does_not_from_its_declaration():
    from dataclasses import fields

    from sdxl_nb.backends.base import FEATURES, Capabilities, refuse_lacking

    not_features = {"previews", "memory_facts", "configure", "scheduler_config", "local_models", "rerun"}
    assert {f.name for f in fields(Capabilities)} - not_features == set(FEATURES)  # every capability is named
    caps = ComfyBackend.capabilities
    runs = caps.runs()
    for feature in ("LoRAs", "textual-inversion embeddings", "a refiner model", "hires fix", "ControlNets", "img2img",
                    "inpaint", "txt2img", "seed-walk animations"):
        assert any(text.startswith(feature) for text in runs), feature
    backend = ComfyBackend.__new__(ComfyBackend)
    with pytest.raises(InputError) as refused:
        refuse_lacking(backend, ["ip_adapter"])
    message = str(refused.value)
    assert "\n" not in message and message.startswith("the ComfyUI backend cannot run IP-Adapter")
    for name, text in FEATURES.items():  # each feature said once as run or as not there, as declared
        assert text in message, name
    not_there = message.split("not there: ", 1)[1]
    assert all((FEATURES[name] in not_there) == caps.lacks(name) for name in FEATURES)
    assert json.dumps(caps.lacking())  # plain text, for the lab's status line too
