"""LoRAs on tiny-sdxl: discovery and listing, both key layouts, fit checks before any work, weights, switching
without reload, every mode, the record, PNG parameters, ComfyUI export, exact re-runs and drift."""

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, SKIPPED, file_drift, rerun_jobs, select_for_rerun
from sdxl_nb.config.loras import DEMO_LORA, list_loras
from sdxl_nb.config.tiny_lora import tiny_lora_tensors, write_lora
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.generate import generate
from sdxl_nb.record.metadata import parse_parameters
from tests.conftest import PYTHON, SMALL, pixels, python_env


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    """A LoRA folder: the same factors in kohya and PEFT layouts, kohya's SDXL (sgm) names, a second LoRA,
    an SD 1.5 LoRA, one made for a larger model, and a truncated file."""
    import numpy as np

    folder = tmp_path_factory.mktemp("loras")
    write_lora(folder / "kohya.safetensors", tiny_lora_tensors("kohya", seed=1))
    write_lora(folder / "peft.safetensors", tiny_lora_tensors("peft", seed=1))
    write_lora(folder / "sgm.safetensors", tiny_lora_tensors("kohya-sgm", seed=1))
    write_lora(folder / "other.safetensors", tiny_lora_tensors("kohya", seed=2, parts=("unet",)))
    rng = np.random.default_rng(0)
    sd15 = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": rng.standard_normal((4, 768)),
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": rng.standard_normal((768, 4)),
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
                rng.standard_normal((4, 768)),
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight":
                rng.standard_normal((320, 4))}
    write_lora(folder / "sd15.safetensors", {k: v.astype(np.float32) for k, v in sd15.items()})
    key = "lora_unet_down_blocks_2_attentions_0_transformer_blocks_0_attn1_to_q"
    write_lora(folder / "bigger.safetensors", {f"{key}.lora_down.weight": np.ones((4, 1280), np.float32),
                                               f"{key}.lora_up.weight": np.ones((1280, 4), np.float32)})
    data = (folder / "kohya.safetensors").read_bytes()
    (folder / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    return folder


@pytest.fixture
def loras_env(lora_dir, monkeypatch):
    monkeypatch.setenv("SDXL_NB_LORAS", str(lora_dir))
    return lora_dir


@pytest.fixture(scope="module")
def lora_engine(isolated_env):
    """Its own engine: LoRAs loaded here never touch the shared engine other tests compare pixels with."""
    from sdxl_nb.backends.local import Engine

    return Engine(device="cpu")


@pytest.fixture
def make(lora_engine, tmp_path, loras_env):
    def _make(**fields):
        out = fields.pop("out_dir", tmp_path / "out")
        engine = fields.pop("engine", lora_engine)
        return generate(out_dir=out, engine=engine, **{**SMALL, "seed": 1, "prompt": "a fox", **fields})

    return _make


def test_discovery_in_folders_and_tool_roots(tmp_path, monkeypatch):
    a1111, comfy, plain = tmp_path / "webui", tmp_path / "ComfyUI", tmp_path / "mine"
    write_lora(a1111 / "models" / "Lora" / "style" / "a.safetensors", tiny_lora_tensors(seed=3, parts=("unet",)))
    write_lora(comfy / "models" / "loras" / "b.safetensors", tiny_lora_tensors(seed=4, parts=("unet",)))
    write_lora(plain / "c.safetensors", tiny_lora_tensors(seed=5, parts=("unet",)))
    monkeypatch.setenv("SDXL_NB_LORAS", f"{a1111}:{comfy}:{plain}")
    found = {lora.name: lora for lora in list_loras()}
    assert list(found) == [DEMO_LORA, "a", "b", "c"]
    assert found[DEMO_LORA].source == "embedded" and found["a"].source == str(a1111 / "models" / "Lora")
    assert len(found["b"].short_hash) == 12 and found["b"].size_bytes > 0


def test_demo_lora_is_deterministic_and_listed_with_its_fit(loras_env, lora_engine):
    from sdxl_nb.config.tiny_lora import demo_lora_path, ensure_demo_lora
    from sdxl_nb.jobs.networks import lora_listing

    first = ensure_demo_lora().read_bytes()
    demo_lora_path().unlink()
    assert list_loras()[0].name == DEMO_LORA and demo_lora_path().read_bytes() == first  # rebuilt identically
    rows = {row["name"]: row for row in lora_listing("tiny-sdxl", backend=lora_engine)}
    assert rows[DEMO_LORA]["fits"] and rows["kohya"]["fits"] and rows["peft"]["fits"]
    assert not rows["sd15"]["fits"] and "SD 1.x" in rows["sd15"]["problem"]
    assert not rows["bigger"]["fits"] and "matches nothing" in rows["bigger"]["problem"]
    assert not rows["truncated"]["fits"] and "truncated" in rows["truncated"]["problem"]


@pytest.mark.slow
def test_cli_lists_loras(loras_env):
    result = subprocess.run([PYTHON, "-m", "sdxl_nb", "loras", "--json"], capture_output=True, text=True,
                            env=python_env({"SDXL_NB_LORAS": str(loras_env)}), timeout=180)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["loras"]}
    assert rows[DEMO_LORA]["fits"] is True and rows["sd15"]["fits"] is False and len(rows["kohya"]["short_hash"]) == 12


@pytest.mark.parametrize("name, message", [
    ("sd15", "was made for SD 1.x/2.x"),
    ("bigger", "matches nothing in tiny-sdxl"),
    ("truncated", "is truncated"),
    ("nope", "unknown LoRA 'nope'"),
])
def test_a_lora_that_cannot_run_is_one_error_before_any_work(make, tmp_path, name, message):
    with pytest.raises(InputError, match=message):
        make(prompt=f"a fox <lora:{name}:0.8>", out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("fields, message", [
    ({"loras": [("kohya", 0.5)], "prompt": "<lora:kohya:0.7> fox"}, "given twice with different weights"),
    ({"negative_prompt": "<lora:kohya:1>"}, "negative prompt is not supported"),
    ({"loras": "kohya"}, "loras must be"),
    ({"loras": [("kohya", "x")]}, "is not a number"),
    ({"prompt": "<hypernet:x:1> fox"}, "not supported"),
])
def test_bad_lora_requests(make, fields, message):
    with pytest.raises(InputError, match=message):
        make(**fields)


def test_both_key_layouts_load_the_same_lora(make, tmp_path):
    none = make(out_dir=tmp_path / "none")
    kohya = make(prompt="a fox <lora:kohya:1>", out_dir=tmp_path / "k")
    peft = make(prompt="a fox <lora:peft:1>", out_dir=tmp_path / "p")
    sgm = make(prompt="a fox <lora:sgm:1>", out_dir=tmp_path / "s")
    assert not np.array_equal(pixels(none.images[0]), pixels(kohya.images[0]))
    assert np.array_equal(pixels(kohya.images[0]), pixels(peft.images[0]))  # the same factors, either layout
    assert not np.array_equal(pixels(none.images[0]), pixels(sgm.images[0]))  # kohya's SDXL block names load
    assert kohya.record["warnings"] == [] and any("loaded LoRA kohya (48 layers)" in e for e in kohya.record["events"])


def test_weights_switching_and_the_way_back(isolated_env, loras_env, tmp_path):
    from sdxl_nb.backends.local import Engine

    engine = Engine(device="cpu")

    def make(**fields):
        return generate(out_dir=tmp_path, engine=engine, **{**SMALL, "seed": 1, "prompt": "a fox", **fields})

    before = pixels(make().images[0])
    runs = {w: make(loras=[("kohya", w)]) for w in (0.0, 0.5, 1.0, -1.0)}
    images = {w: pixels(result.images[0]) for w, result in runs.items()}
    assert np.array_equal(images[0.0], before)  # weight 0 adds nothing
    assert len({images[w].tobytes() for w in (0.5, 1.0, -1.0)} | {before.tobytes()}) == 4
    both = make(prompt="a fox <lora:kohya:0.5>", loras=["other:0.8"])
    assert not np.array_equal(pixels(both.images[0]), images[0.5])
    assert [lora["name"] for lora in both.record["loras"]] == ["kohya", "other"]
    after = make()
    assert np.array_equal(pixels(after.images[0]), before)  # LoRAs turned off: the pixels of before any LoRA
    again = make(loras=[("kohya", 0.5)])
    assert np.array_equal(pixels(again.images[0]), images[0.5])
    loads = [event for result in (*runs.values(), both, after, again) for event in result.record["events"]
             if event.startswith("loaded LoRA")]
    assert len(loads) == 2  # kohya and other, once each: every later job only switched
    assert any("no reload" in event for event in after.record["events"])


def test_record_png_parameters_and_the_three_ways(make, tmp_path, lora_dir):
    tagged = make(prompt="a fox <lora:kohya:0.8>", out_dir=tmp_path / "a")
    listed = make(loras=[("kohya", 0.8)], out_dir=tmp_path / "b")
    assert np.array_equal(pixels(tagged.images[0]), pixels(listed.images[0]))
    (entry,) = listed.record["loras"]
    assert entry["name"] == "kohya" and entry["weight"] == 0.8 and entry["path"] == str(lora_dir / "kohya.safetensors")
    assert len(entry["sha256"]) == 64 and len(entry["a1111_hash"]) == 12
    for result in (tagged, listed):
        with Image.open(result.paths[0]) as image:
            params = parse_parameters(image.text["parameters"])
            chunk = json.loads(image.text["sdxl_nb"])
        assert params["Prompt"] == "a fox <lora:kohya:0.8>"  # the tag is kept (added for loras=)
        assert params["Lora hashes"] == f"kohya: {entry['a1111_hash']}"
        assert chunk["loras"] == [entry]


def test_a1111_short_hash_is_the_hash_after_the_header(lora_dir):
    import hashlib
    import struct

    from sdxl_nb.config.loras import a1111_lora_hash

    data = (lora_dir / "kohya.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert a1111_lora_hash(lora_dir / "kohya.safetensors") == hashlib.sha256(data[8 + length:]).hexdigest()


def test_lora_with_img2img_inpaint_and_animate(make, lora_engine, tmp_path):
    from sdxl_nb.jobs.animate import animate

    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(mask)
    for extra in ({"init_image": str(init)}, {"init_image": str(init), "mask_image": str(mask)}):
        plain, with_lora = make(**extra), make(loras=["kohya:1"], **extra)
        assert with_lora.record["mode"] == plain.record["mode"] != "txt2img"
        assert not np.array_equal(pixels(plain.images[0]), pixels(with_lora.images[0]))
    frames = animate(prompt="a fox <lora:kohya:0.7>", prompt_end="a (lighthouse:1.3)", mode="prompt-travel",
                     frames=3, seed=1, out_dir=tmp_path / "anim", engine=lora_engine, **SMALL)
    assert frames.record["loras"][0]["weight"] == 0.7
    with pytest.raises(InputError, match="prompt end may only repeat"):
        animate(prompt="a fox", prompt_end="x <lora:kohya:1>", mode="prompt-travel", frames=2, seed=1,
                out_dir=tmp_path / "never", engine=lora_engine, **SMALL)
    records, _ = read_logged_records(tmp_path / "anim")
    assert set(rerun_jobs(select_for_rerun(records, "all"), lora_engine)["verdict"]) == {BIT_EXACT}


def test_rerun_is_bit_exact_and_a_changed_file_is_drift(make, lora_engine, tmp_path, loras_env):
    folder = tmp_path / "jobs"
    changing = write_lora(loras_env / "changing.safetensors", tiny_lora_tensors("kohya", seed=7))
    make(prompt="a fox <lora:changing:0.9>", loras=[("peft", 0.4)], batch=2, out_dir=folder)
    make(out_dir=folder)  # no LoRA after one
    records, _ = read_logged_records(folder)
    assert rerun_jobs(select_for_rerun(records, "all"), lora_engine)["verdict"].tolist() == [BIT_EXACT] * 3
    assert file_drift(records).empty
    write_lora(changing, tiny_lora_tensors("kohya", seed=8))
    drift = file_drift(records)
    assert drift[["kind", "name", "jobs"]].values.tolist() == [["LoRA", "changing", 1]]
    table = rerun_jobs(select_for_rerun(records, "all"), lora_engine)
    assert table["verdict"].tolist()[:2] == [SKIPPED] * 2 and "changed since the job" in table["note"][0]
    from sdxl_nb.audit import run_audit

    assert "LoRA 'changing'" in run_audit(folder).text()
    changing.unlink()


def test_comfy_export_chains_lora_loaders(loras_env):
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    resolved = prepare(GenerationRequest(prompt="a fox <lora:kohya:0.8>", loras=[("other", -0.5)], seed=1, **SMALL))
    graph = build_workflow(resolved).graph
    loaders = [node for node in graph.values() if node["class_type"] == "LoraLoader"]
    assert [(n["inputs"]["lora_name"], n["inputs"]["strength_model"], n["inputs"]["strength_clip"]) for n in loaders] \
        == [("kohya.safetensors", 0.8, 0.8), ("other.safetensors", -0.5, -0.5)]
    (first_id,) = [i for i, n in graph.items() if n is loaders[0]]
    assert loaders[1]["inputs"]["model"] == [first_id, 0] and loaders[1]["inputs"]["clip"] == [first_id, 1]
    (sampler,) = [n for n in graph.values() if n["class_type"] == "KSampler"]
    second = [i for i, n in graph.items() if n is loaders[1]][0]
    assert sampler["inputs"]["model"] == [second, 0]
    texts = [n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert texts[0] == "a fox "  # the tag is applied by LoraLoader, not read as text


def test_comfy_backend_carries_loras_and_refuses_weighting(loras_env, tmp_path):
    from sdxl_nb.backends.comfy.backend import generate_remote
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    fake = FakeComfy(loras=["kohya.safetensors"])
    with LocalServer(fake.app()) as server:
        common = dict(url=server.url, checkpoint="sd_xl_base_1.0.safetensors", seed=5, **SMALL)
        result = generate_remote(prompt="a fox <lora:kohya:0.6>", out_dir=tmp_path / "a", **common)
        (graph,) = [prompt["graph"] for prompt in fake.prompts.values()]
        assert [n["inputs"]["strength_model"] for n in graph.values() if n["class_type"] == "LoraLoader"] == [0.6]
        assert result.record["loras"][0]["name"] == "kohya" and result.record["conditioning"] is None
        with pytest.raises(InputError, match="cannot run A1111 prompt weighting"):
            generate_remote(prompt="a (fox:1.4)", out_dir=tmp_path / "b", **common)
        from sdxl_nb.errors import ModelUnavailableError

        with pytest.raises(ModelUnavailableError, match="LoRA peft.safetensors is not on the ComfyUI server"):
            generate_remote(prompt="a fox <lora:peft:1>", out_dir=tmp_path / "c", **common)


def test_cli_lora_option_is_repeatable(loras_env, tmp_path):
    from sdxl_nb.cli import build_parser
    from sdxl_nb.cli.generate import request_from

    args = build_parser().parse_args(["generate", "--prompt", "a fox", "--lora", "kohya:0.5", "--lora", "other"])
    assert request_from(args).loras == ["kohya:0.5", "other"]
    from sdxl_nb.request.prepare import prepare

    resolved = prepare(request_from(args))
    assert [(lora.name, lora.weight) for lora in resolved.loras] == [("kohya", 0.5), ("other", 1.0)]


def test_replicas_apply_the_loras_on_every_device(make, lora_engine, isolated_env, tmp_path):
    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.replicas import ReplicaEngine

    single = make(prompt="a (fox:1.2) <lora:kohya:0.7>", batch=2, out_dir=tmp_path / "one")
    replicas = ReplicaEngine(engines=[lora_engine, Engine(device="cpu")])
    split = make(prompt="a (fox:1.2) <lora:kohya:0.7>", batch=2, out_dir=tmp_path / "two", engine=replicas,
                 chunk_size=1)
    single_by_one = make(prompt="a (fox:1.2) <lora:kohya:0.7>", batch=2, out_dir=tmp_path / "three", chunk_size=1)
    assert split.record["loras"] == single.record["loras"]
    for a, b in zip(split.images, single_by_one.images, strict=True):  # each image as on one device, call for call
        assert np.array_equal(pixels(a), pixels(b))
