"""ComfyUI workflow export: the SDXL graph per mode, sampler names from presets, and `sdxl-nb comfy-export`."""

import json

import pytest
from PIL import Image

from sdxl_nb.backends.comfy.workflow import build_workflow
from sdxl_nb.cli import main
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.fake_comfy import NODES, FakeComfy

BASE = "stabilityai/stable-diffusion-xl-base-1.0"


def workflow(**fields):
    request = GenerationRequest(**{"prompt": "a red fox", "width": 64, "height": 64, "steps": 3, "seed": 11,
                                   "model": BASE, **fields})
    return build_workflow(prepare(request))


def nodes_of(graph, class_type):
    return [(node_id, node) for node_id, node in graph.items() if node["class_type"] == class_type]


def only(graph, class_type):
    (found,) = nodes_of(graph, class_type)
    return found


def check_links(graph):
    """Every link names an existing node; every node type and required input is one ComfyUI knows."""
    for node in graph.values():
        assert set(NODES[node["class_type"]]) <= set(node["inputs"])
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in graph and isinstance(value[1], int)


def test_txt2img_graph_has_the_sdxl_nodes_wired_with_the_request_values():
    flow = workflow(batch=3, scheduler="DPM++ 2M Karras", negative_prompt="blurry", cfg=6.5)
    graph = flow.graph
    check_links(graph)
    ckpt_id, ckpt = only(graph, "CheckpointLoaderSimple")
    assert ckpt["inputs"]["ckpt_name"] == "stable-diffusion-xl-base-1.0.safetensors"
    vae_id, vae = only(graph, "VAELoader")  # the preset's dedicated VAE
    assert vae["inputs"]["vae_name"] == "sdxl-vae-fp16-fix.safetensors"
    texts = {node["inputs"]["text"] for _, node in nodes_of(graph, "CLIPTextEncode")}
    assert texts == {"a red fox", "blurry"}
    assert not nodes_of(graph, "ConditioningZeroOut")
    latent_id, latent = only(graph, "EmptyLatentImage")
    assert latent["inputs"] == {"width": 64, "height": 64, "batch_size": 3}
    sampler_id, sampler = only(graph, "KSampler")
    inputs = sampler["inputs"]
    assert (inputs["seed"], inputs["steps"], inputs["cfg"], inputs["denoise"]) == (11, 3, 6.5, 1.0)
    assert (inputs["sampler_name"], inputs["scheduler"]) == ("dpmpp_2m", "karras")
    assert inputs["model"] == [ckpt_id, 0] and inputs["latent_image"] == [latent_id, 0]
    positive = graph[inputs["positive"][0]]
    assert positive["inputs"]["text"] == "a red fox" and positive["inputs"]["clip"] == [ckpt_id, 1]
    decode_id, decode = only(graph, "VAEDecode")
    assert decode["inputs"] == {"samples": [sampler_id, 0], "vae": [vae_id, 0]}
    save_id, save = only(graph, "SaveImage")
    assert save["inputs"]["images"] == [decode_id, 0] and flow.save_node == save_id
    assert any("one noise tensor for the whole batch" in note for note in flow.notes)


@pytest.mark.parametrize("scheduler, pair", [("Euler a", ("euler_ancestral", "normal")), ("UniPC", ("uni_pc", "normal")),
                                             ("DPM++ 2M SDE Karras", ("dpmpp_2m_sde", "karras")),
                                             ("DDIM", ("ddim", "ddim_uniform"))])
def test_sampler_and_scheduler_names_come_from_the_presets_comfy_pair(scheduler, pair):
    (_id, sampler) = only(workflow(scheduler=scheduler).graph, "KSampler")
    assert (sampler["inputs"]["sampler_name"], sampler["inputs"]["scheduler"]) == pair


def test_default_scheduler_runs_euler_and_says_so():
    flow = workflow(scheduler="Default")
    (_id, sampler) = only(flow.graph, "KSampler")
    assert sampler["inputs"]["sampler_name"] == "euler"
    assert any("no ComfyUI equivalent" in note for note in flow.notes)


def test_no_dedicated_vae_decodes_with_the_checkpoints_own_and_empty_negative_is_zeroed():
    flow = build_workflow(prepare(GenerationRequest(prompt="x", model=BASE, width=64, height=64, seed=1)), vae="",
                          checkpoint="mine.safetensors")
    graph = flow.graph
    check_links(graph)
    assert not nodes_of(graph, "VAELoader")
    ckpt_id, ckpt = only(graph, "CheckpointLoaderSimple")
    assert ckpt["inputs"]["ckpt_name"] == "mine.safetensors"
    assert only(graph, "VAEDecode")[1]["inputs"]["vae"] == [ckpt_id, 2]
    zero_id, zero = only(graph, "ConditioningZeroOut")
    assert only(graph, "KSampler")[1]["inputs"]["negative"] == [zero_id, 0]


@pytest.fixture
def init_png(tmp_path):
    path = tmp_path / "init.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(path)
    return path


def test_img2img_loads_encodes_and_denoises_by_strength(init_png):
    flow = workflow(init_image=str(init_png), strength=0.4, width=None, height=None, batch=2)
    graph = flow.graph
    check_links(graph)
    assert not nodes_of(graph, "EmptyLatentImage")
    load_id, load = only(graph, "LoadImage")
    assert load["inputs"]["image"] == "init.png" and flow.uploads == {str(init_png.resolve()): "init.png"}
    encode_id, encode = only(graph, "VAEEncode")
    assert encode["inputs"]["pixels"] == [load_id, 0]
    repeat_id, repeat = only(graph, "RepeatLatentBatch")
    assert repeat["inputs"] == {"samples": [encode_id, 0], "amount": 2}
    assert not nodes_of(graph, "KSampler")
    sampler = only(graph, "KSamplerAdvanced")[1]["inputs"]
    # diffusers runs int(3 x 0.4) = 1 step: the last step of the 3-step schedule.
    assert (sampler["steps"], sampler["start_at_step"], sampler["end_at_step"]) == (3, 2, 3)
    assert (sampler["add_noise"], sampler["return_with_leftover_noise"], sampler["noise_seed"]) == ("enable", "disable", 11)
    assert sampler["latent_image"] == [repeat_id, 0]
    assert not nodes_of(graph, "ImageScale")


def test_img2img_resized_and_inpaint_add_scale_and_noise_mask(init_png, tmp_path):
    mask = tmp_path / "mask.png"
    Image.new("L", (96, 64), 255).save(mask)
    flow = build_workflow(prepare(GenerationRequest(prompt="x", model=BASE, init_image=str(init_png),
                                                    mask_image=str(mask), width=64, height=64, seed=1)),
                          content_names=True)
    graph = flow.graph
    check_links(graph)
    scales = [node["inputs"] for _, node in nodes_of(graph, "ImageScale")]
    assert {(s["upscale_method"], s["width"], s["height"]) for s in scales} == {("lanczos", 64, 64),
                                                                                ("nearest-exact", 64, 64)}
    noise_id, noise = only(graph, "SetLatentNoiseMask")
    assert only(graph, "KSamplerAdvanced")[1]["inputs"]["latent_image"] == [noise_id, 0]
    names = sorted(flow.uploads.values())
    assert len(names) == 2 and all(n.startswith("sdxl_nb_") and n.endswith(".png") for n in names)
    assert only(graph, "LoadImageMask")[1]["inputs"]["channel"] == "red"


def test_graphs_pass_a_comfyui_style_validation(init_png):
    fake = FakeComfy(checkpoints=["stable-diffusion-xl-base-1.0.safetensors"])
    fake.uploads["init.png"] = init_png.read_bytes()
    for fields in ({}, {"init_image": str(init_png), "width": 64, "height": 64, "strength": 0.5}):
        assert fake._validate(workflow(**fields).graph) is None
    broken = workflow().graph
    del broken[only(broken, "KSampler")[0]]["inputs"]["seed"]
    problem = fake._validate(broken)
    assert problem["node_errors"] and "seed" in json.dumps(problem)


def test_cli_export_writes_the_workflow_file(tmp_path, capsys):
    target = tmp_path / "flow.json"
    code = main(["comfy-export", "--prompt", "a red fox", "--model", BASE, "--width", "64", "--height", "64",
                 "--steps", "3", "--seed", "11", "--comfy-checkpoint", "sd_xl_base_1.0.safetensors", "-o", str(target)])
    assert code == 0
    graph = json.loads(target.read_text(encoding="utf-8"))
    assert graph == build_workflow(prepare(GenerationRequest(prompt="a red fox", model=BASE, width=64, height=64,
                                                             steps=3, seed=11)),
                                   checkpoint="sd_xl_base_1.0.safetensors").graph
    assert capsys.readouterr().out.strip() == str(target)
    assert main(["comfy-export", "--prompt", "x", "--model", BASE, "--seed", "1"]) == 0
    assert "CheckpointLoaderSimple" in json.loads(capsys.readouterr().out)["1"]["class_type"]


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "steps 0 is out of range"),
    (["--out", "somewhere"], "--out/--json do not apply to comfy-export"),
    (["-o", "/no/such/folder/flow.json"], "does not exist or is not writable"),
])
def test_cli_export_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    target = tmp_path / "flow.json"
    argv = ["comfy-export", "--prompt", "x", "--model", BASE, "--seed", "1", *args]
    if "-o" not in args:
        argv += ["-o", str(target)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and not list(tmp_path.iterdir())


def test_scale_out_modules_import_without_torch():
    """Batches, replicas, mirror, remote backends and their CLI verbs stay pure (torch only in the engine)."""
    import subprocess

    from tests.conftest import PYTHON, python_env

    modules = ["sdxl_nb.jobs.batch", "sdxl_nb.backends.replicas", "sdxl_nb.cloud.mirror", "sdxl_nb.backends.comfy.backend",
               "sdxl_nb.backends.comfy.client", "sdxl_nb.backends.comfy.workflow", "sdxl_nb.cloud.lambda_cloud",
               "sdxl_nb.cli.batch", "sdxl_nb.cli.comfy_export", "sdxl_nb.cli.mirror", "sdxl_nb.cli.backend_options"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'ipywidgets') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
