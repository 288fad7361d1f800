"""ControlNet on tiny-sdxl with the embedded tiny-sdxl-controlnet: canny maps as cv2.Canny, weight 0 is no ControlNet,
several units, start/end, every mode, one-line refusals, A1111 parameters, ComfyUI nodes, audits and re-runs."""

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
from sdxl_nb.cli import main
from sdxl_nb.config.controlnets import TINY_CONTROLNET
from sdxl_nb.errors import InputError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.metadata import parse_parameters
from sdxl_nb.record.recovery import verify_folder
from sdxl_nb.record.store import sha256_file
from tests.conftest import SMALL, pixels


def keep_inputs(folder, *images) -> None:
    """Copies of the images in the folder's inputs/, where a re-run reads them (never from a recorded path outside)."""
    (folder / "inputs").mkdir(exist_ok=True)
    for image in images:
        shutil.copyfile(image, folder / "inputs" / image.name)


@pytest.fixture(scope="module")
def control_image(tmp_path_factory):
    """A black square on white: canny finds its outline, nothing else."""
    path = tmp_path_factory.mktemp("control") / "square.png"
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), fill="black")
    image.save(path)
    return path


def unit(image, **fields):
    return {"model": TINY_CONTROLNET, "image": str(image), "preprocessor": "canny", **fields}


def test_canny_map_is_cv2_canny_of_the_resized_image(control_image):
    import cv2

    from sdxl_nb.request.control_maps import control_map

    edges = np.asarray(control_map(str(control_image), "canny", {"low_threshold": 100, "high_threshold": 200},
                                   (64, 64)))
    assert edges.shape == (64, 64, 3) and set(np.unique(edges)) == {0, 255}
    with Image.open(control_image) as image:
        expected = cv2.Canny(np.asarray(image.convert("RGB")), 100, 200)
    assert np.array_equal(edges[..., 0], expected)
    assert edges[32, 15, 0] and edges[32, 47, 0] and not edges[32, 18:46].any() and not edges[2:10, 2:10].any()
    # Resized first ("Just Resize"), then preprocessed: the outline moves with the size.
    wide = np.asarray(control_map(str(control_image), "canny", {"low_threshold": 100, "high_threshold": 200},
                                  (128, 64)))
    assert wide.shape == (64, 128, 3) and wide[32, 30:36, 0].any()
    # "none": the image as it is, resized.
    same = control_map(str(control_image), "none", (), (64, 64))
    assert np.array_equal(pixels(same), pixels(Image.open(control_image)))


def test_weight_zero_is_bit_exact_no_controlnet_and_weight_one_changes_the_image(run, control_image, tmp_path):
    plain = run(prompt="a fox", out_dir=tmp_path / "plain")
    zero = run(prompt="a fox", out_dir=tmp_path / "zero", controlnets=[unit(control_image, weight=0)])
    full = run(prompt="a fox", out_dir=tmp_path / "full", controlnets=[unit(control_image)])
    assert np.array_equal(pixels(plain.images[0]), pixels(zero.images[0]))  # residuals x 0 are added as zeros
    assert not np.array_equal(pixels(plain.images[0]), pixels(full.images[0]))


def test_a_job_records_its_controlnet_saves_the_map_and_writes_a1111_parameters(run, control_image, tmp_path):
    out = tmp_path / "out"
    result = run(prompt="a fox", out_dir=out, controlnets=[unit(control_image, weight=0.8, start=0.1, end=0.9,
                                                                 low_threshold=50, high_threshold=150)])
    (record,) = read_records(out / "jobs.log")
    (entry,) = record["controlnets"]
    assert entry["model"]["name"] == TINY_CONTROLNET and len(entry["model"]["sha256"]) == 64
    assert entry["image"] == {"path": f"inputs/{sha256_file(control_image)}.png", "sha256": sha256_file(control_image),
                              "size": [64, 64]}  # the job's own copy, relative to its folder
    assert (entry["preprocessor"], entry["settings"]) == ("canny", {"low_threshold": 50, "high_threshold": 150})
    assert (entry["weight"], entry["start"], entry["end"]) == (0.8, 0.1, 0.9)
    (saved,) = record["control_maps"]
    assert saved["path"] == entry["map"] and sha256_file(out / saved["path"]) == saved["sha256"]
    assert result.files["control_map_0"] == out / saved["path"]
    with Image.open(out / saved["path"]) as image:
        assert image.size == (64, 64) and set(np.unique(np.asarray(image))) <= {0, 255}
    with Image.open(result.paths[0]) as png:
        params = parse_parameters(png.text["parameters"])
    assert params["ControlNet 0"] == (
        f"Module: canny, Model: {TINY_CONTROLNET} [{extension_short_hash(entry['model'])}], Weight: 0.8, "
        "Resize Mode: Just Resize, Low Vram: False, Processor Res: 64, Threshold A: 50.0, Threshold B: 150.0, "
        "Guidance Start: 0.1, Guidance End: 0.9, Pixel Perfect: False, Control Mode: Balanced")
    assert verify_folder(out).ok


def test_two_controlnets_at_once_and_start_end(run, engine, control_image, tmp_path):
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - pixels(Image.open(control_image))).save(inverted)
    one = run(prompt="a fox", out_dir=tmp_path / "one", controlnets=[unit(control_image)])
    two = run(prompt="a fox", out_dir=tmp_path / "two",
              controlnets=[unit(control_image), unit(inverted, preprocessor="none", weight=0.5)])
    assert len(two.record["controlnets"]) == 2 and [m["unit"] for m in two.record["control_maps"]] == [0, 1]
    with Image.open(two.paths[0]) as png:
        params = parse_parameters(png.text["parameters"])
    assert params["ControlNet 1"].startswith("Module: none, Model: tiny-sdxl-controlnet [") and "Threshold" not in \
        params["ControlNet 1"]
    assert not np.array_equal(pixels(one.images[0]), pixels(two.images[0]))
    # 2 steps: [0.5, 1] guides the second step only, [0, 0.5] the first only; both differ from the whole run.
    late = run(prompt="a fox", out_dir=tmp_path / "late", controlnets=[unit(control_image, start=0.5)])
    early = run(prompt="a fox", out_dir=tmp_path / "early", controlnets=[unit(control_image, end=0.5)])
    seen = [pixels(r.images[0]) for r in (one, late, early)]
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[0], seen[2])
    assert not np.array_equal(seen[1], seen[2])
    for folder in ("two", "late"):
        records, _ = read_logged_records(tmp_path / folder)
        assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_every_mode_takes_a_controlnet_and_reruns_bit_exact(run, engine, control_image, tmp_path, mode):
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), "teal").save(init)
    Image.new("L", (64, 64), 255).save(mask)
    inputs = dict(init_image=str(init), strength=1.0, **({"mask_image": str(mask)} if mode == "inpaint" else {}))
    plain = run(prompt="a fox", out_dir=tmp_path / "plain", **inputs)
    guided = run(prompt="a fox", out_dir=tmp_path / "guided", controlnets=[unit(control_image)], **inputs)
    assert guided.record["mode"] == mode and guided.record["controlnets"][0]["preprocessor"] == "canny"
    assert not np.array_equal(pixels(plain.images[0]), pixels(guided.images[0]))
    records, _ = read_logged_records(tmp_path / "guided")
    keep_inputs(tmp_path / "guided", init, mask, control_image)
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]
    assert verify_folder(tmp_path / "guided").ok


def test_the_pipelines_share_the_loaded_weights_in_their_dtype(control_image):
    """bfloat16 weights stay bfloat16 (from_pipe would cast the shared modules to float32) and are the same objects."""
    import torch

    from sdxl_nb.backends.local import Engine
    from sdxl_nb.backends.local.controlnet import controlnet_pipeline
    from sdxl_nb.backends.local.oom import component_bytes
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    loaded = Engine(device="cpu", dtype=torch.bfloat16).load(find_model("tiny-sdxl", load_presets()))
    before = component_bytes(loaded.pipe)
    units = prepare(GenerationRequest(prompt="x", controlnets=[unit(control_image)], **SMALL)).controlnets
    for mode in ("txt2img", "img2img", "inpaint"):
        pipe = controlnet_pipeline(loaded, mode, units)
        assert pipe.unet is loaded.pipe.unet and pipe.vae is loaded.pipe.vae
        assert pipe.text_encoder is loaded.pipe.text_encoder and pipe.text_encoder_2 is loaded.pipe.text_encoder_2
        assert pipe.unet.dtype == pipe.controlnet.dtype == torch.bfloat16
    assert component_bytes(loaded.pipe) == before
    assert controlnet_pipeline(loaded, "txt2img", units).controlnet is pipe.controlnet  # loaded once per kernel


def test_a_stale_or_changed_record_input_is_a_replay_error(run, control_image, tmp_path):
    from sdxl_nb.audit import ReplayError, request_from_record

    moved = tmp_path / "moved.png"
    moved.write_bytes(control_image.read_bytes())
    run(prompt="a fox", out_dir=tmp_path / "out", controlnets=[unit(moved)])
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert request_from_record(record, tmp_path / "out").controlnets[0].image_sha256 == sha256_file(moved)
    Image.new("RGB", (64, 64), "red").save(tmp_path / "out" / record["controlnets"][0]["image"]["path"])  # its copy
    with pytest.raises(ReplayError, match="ControlNet 0 control image .* changed since the job"):
        request_from_record(record, tmp_path / "out")


# ---- refusals: one line, before any work, nothing written ----
@pytest.mark.parametrize("change, message", [
    ({"image": "missing.png"}, "ControlNet 0 control image .* does not exist"),
    ({"image": "notimage.png"}, "ControlNet 0 control image .* is not a readable image"),
    ({"image": "bomb.png"}, "megapixels"),
    ({"model": "nope"}, "unknown ControlNet 'nope'.*accepted: tiny-sdxl-controlnet"),
    ({"preprocessor": "depth"}, "preprocessor 'depth_midas' needs dpt_hybrid-midas-501f0c75.pt in SDXL_NB_ANNOTATORS "
                                r"\(not set; nor is lllyasviel/Annotators in the HF cache\); fetch it .* with: hf download "
                                "lllyasviel/Annotators dpt_hybrid-midas-501f0c75.pt"),
    ({"preprocessor": "seg"}, "preprocessor 'seg' is not run here; make the map elsewhere"),
    ({"preprocessor": "sobel"}, "unknown preprocessor 'sobel'; accepted: canny, none"),
    ({"weight": 3}, "ControlNet 0 weight 3 is out of range; accepted: 0 to 2"),
    ({"start": 0.6, "end": 0.4}, "start 0.6 is not before its end 0.4"),
    ({"low_threshold": 300}, "low threshold 300 is out of range; accepted: 1 to 255"),
    ({"low_threshold": 200, "high_threshold": 100}, "above its high threshold"),
    ({"preprocessor": "none", "low_threshold": 10}, "apply only to preprocessor canny"),
    ({"strenght": 1}, "unknown key 'strenght'"),
])
def test_bad_controlnet_input_is_one_line_and_writes_nothing(run, control_image, tmp_path, change, message):
    from sdxl_nb.config.limits import MAX_INPUT_PIXELS

    (tmp_path / "notimage.png").write_text("not an image")
    if change.get("image") == "bomb.png":  # declares more pixels than the budget (a 1-bit PNG stays small)
        side = int(MAX_INPUT_PIXELS ** 0.5) + 8
        Image.new("1", (side, side)).save(tmp_path / "bomb.png")
    fields = {**unit(control_image), **{k: (str(tmp_path / v) if k == "image" else v) for k, v in change.items()}}
    with pytest.raises(InputError, match=message) as caught:
        run(prompt="a fox", out_dir=tmp_path / "never", controlnets=[fields])
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "never").exists()


def test_a_controlnet_of_another_model_family_is_refused_before_any_work(run, control_image, tmp_path,
                                                                       monkeypatch):
    import shutil

    from sdxl_nb.config.tiny_controlnet import ensure_tiny_controlnet

    folder = tmp_path / "controlnets"
    shutil.copytree(ensure_tiny_controlnet(), folder / "sd15-canny")
    config = json.loads((folder / "sd15-canny" / "config.json").read_text())
    (folder / "sd15-canny" / "config.json").write_text(json.dumps({**config, "cross_attention_dim": 768}))
    (folder / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    monkeypatch.setenv("SDXL_NB_CONTROLNETS", str(folder))
    with pytest.raises(InputError, match="ControlNet 'sd15-canny' does not fit the model: its cross_attention_dim "
                                         "is 768, the model's UNet has 64"):
        run(prompt="a fox", out_dir=tmp_path / "never", controlnets=[unit(control_image, model="sd15-canny")])
    assert not (tmp_path / "never").exists()
    # A single file is judged by the names and shapes in its header, before any work too.
    with pytest.raises(InputError, match="ControlNet 'broken' .* has no ControlNet weights") as caught:
        run(prompt="a fox", out_dir=tmp_path / "never", controlnets=[unit(control_image, model="broken")])
    assert "\n" not in str(caught.value) and not (tmp_path / "never").exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weight=st.floats(-1, 3), start=st.floats(-0.5, 1.5), end=st.floats(-0.5, 1.5))
def test_weight_start_end_are_accepted_exactly_in_range(control_image, weight, start, end):
    from sdxl_nb.request.control import resolve_controlnets
    from sdxl_nb.request.resolve import read_input_image

    entry = unit(control_image, weight=weight, start=start, end=end)
    valid = 0 <= weight <= 2 and 0 <= start < end <= 1 and start <= 1 and end >= 0
    if valid:
        (resolved,) = resolve_controlnets([entry], read_input_image)
        assert (resolved.weight, resolved.start, resolved.end) == (weight, start, end)  # never clamped
    else:
        with pytest.raises(InputError):
            resolve_controlnets([entry], read_input_image)


def test_a_backend_without_the_capability_refuses_in_one_line(control_image):
    from sdxl_nb.backends.base import Capabilities, RunPlan, check_plan
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    class Plain:
        name, capabilities = "plain", Capabilities()

    resolved = prepare(GenerationRequest(prompt="x", controlnets=[unit(control_image)], seed=1, **SMALL))
    with pytest.raises(InputError, match="the plain backend cannot run ControlNets"):
        check_plan(Plain(), RunPlan.for_request(resolved))
    # Per-image prompts or noise (animations, prompt travel) run on other pipelines: refused on every backend.
    from dataclasses import replace

    from sdxl_nb.backends.local import Engine

    plan = RunPlan.for_request(resolved)
    travelling = replace(plan, images=(replace(plan.images[0], prompt_end="y", t=0.5),))
    with pytest.raises(InputError, match="ControlNets guide plain batches"):
        check_plan(Engine(device="cpu"), travelling)


# ---- CLI, ComfyUI, listing ----
def test_cli_generate_with_a_controlnet_then_audit_and_verify(kernel_engine, control_image, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["generate", "--prompt", "a fox", "--width", "64", "--height", "64", "--steps", "2", "--seed", "3",
            "--out", str(out), "--controlnet", TINY_CONTROLNET, "--control-image", str(control_image),
            "--control-type", "canny", "--control-weight", "0.7", "--control-start", "0", "--control-end", "0.5"]
    assert main([*argv, "--dry-run"]) == 0
    assert f"ControlNet 0: {TINY_CONTROLNET} [" in capsys.readouterr().out and not out.exists()
    assert main(argv) == 0
    (record,) = read_records(out / "jobs.log")
    assert (record["controlnets"][0]["weight"], record["controlnets"][0]["end"]) == (0.7, 0.5)
    assert main(["verify", "--out", str(out)]) == 0
    keep_inputs(out, control_image)
    assert main(["audit", str(out), "--rerun", "all"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    capsys.readouterr()
    bad = argv[:-8] + ["--control-image", str(tmp_path / "none.png")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "control image" in err and "does not exist" in err
    assert main(argv[:13] + ["--control-weight", "1"]) == 2  # --control-* without --controlnet
    assert "need --controlnet MODEL" in capsys.readouterr().err
    assert len(read_records(out / "jobs.log")) == 1
    sweep = tmp_path / "sweep"  # the same unit guides every cell of a sweep
    assert main(["sweep", *argv[1:11], "--out", str(sweep), "--x", "cfg=3,6", "--controlnet", TINY_CONTROLNET,
                 "--control-image", str(control_image)]) == 0
    cells = [r for r in read_records(sweep / "jobs.log") if r["mode"] != "sweep"]
    assert [(r["cfg"], r["controlnets"][0]["model"]["name"]) for r in cells] == [(3, TINY_CONTROLNET),
                                                                                (6, TINY_CONTROLNET)]
    assert main(["verify", "--out", str(sweep)]) == 0


def test_cli_lists_controlnets_from_the_cache_and_folders(tmp_path, capsys, monkeypatch):
    from sdxl_nb.config.tiny_lora import write_lora

    write_lora(tmp_path / "models" / "ControlNet" / "canny-sdxl.safetensors", {"w": np.zeros((2, 2), np.float32)})
    monkeypatch.setenv("SDXL_NB_CONTROLNETS", str(tmp_path))
    assert main(["controlnets", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in listing["controlnets"]}
    assert rows[TINY_CONTROLNET]["source"] == "embedded" and not rows[TINY_CONTROLNET]["single_file"]
    assert rows["canny-sdxl"]["single_file"] and len(rows["canny-sdxl"]["short_hash"]) == 8
    # the listing shows the hash the extension shows (not the sha256 prefix it used to)
    assert rows["canny-sdxl"]["short_hash"] == extension_short_hash(rows["canny-sdxl"])
    assert listing["preprocessors"][:3] == ["canny", "none", "lineart_standard"]
    assert {"depth_midas", "openpose", "lineart_realistic", "softedge_hed"} <= set(listing["preprocessors"])


def test_comfy_export_has_the_controlnet_nodes(control_image, tmp_path, capsys):
    out = tmp_path / "workflow.json"
    assert main(["comfy-export", "--prompt", "a fox", "--width", "64", "--height", "64", "--steps", "2", "--seed", "1",
                 "--controlnet", TINY_CONTROLNET, "--control-image", str(control_image), "--control-type", "canny",
                 "--canny-low", "51", "--control-weight", "0.6", "--control-end", "0.8", "-o", str(out)]) == 0
    assert "models/controlnet" in capsys.readouterr().err
    graph = json.loads(out.read_text())
    by_class = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in graph.items()}
    assert by_class["ControlNetLoader"][1] == {"control_net_name": "tiny-sdxl-controlnet.safetensors"}
    canny = by_class["Canny"][1]
    assert (canny["low_threshold"], canny["high_threshold"]) == (0.2, round(200 / 255, 4))
    apply_id, apply = by_class["ControlNetApplyAdvanced"]
    assert (apply["strength"], apply["start_percent"], apply["end_percent"]) == (0.6, 0.0, 0.8)
    assert apply["control_net"][0] == by_class["ControlNetLoader"][0] and apply["image"][0] == by_class["Canny"][0]
    sampler = by_class["KSampler"][1]
    assert sampler["positive"] == [apply_id, 0] and sampler["negative"] == [apply_id, 1]


def test_the_comfy_backend_runs_a_controlnet_job_on_a_server(control_image, tmp_path):
    from sdxl_nb.backends.comfy.backend import ComfyBackend
    from sdxl_nb.jobs.generate import generate
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    fake = FakeComfy()
    with LocalServer(fake.app()) as server:
        backend = ComfyBackend(server.url, checkpoint="sd_xl_base_1.0.safetensors", poll_interval_s=0.05)
        kwargs = dict(prompt="a fox", seed=4, engine=backend, **SMALL)
        plain = generate(out_dir=tmp_path / "plain", **kwargs)
        guided = generate(out_dir=tmp_path / "guided", controlnets=[unit(control_image)], **kwargs)
        assert any(name.startswith("sdxl_nb_") for name in fake.uploads)  # the control image went to the server
        classes = {node["class_type"] for prompt in fake.prompts.values() for node in prompt["graph"].values()}
        assert {"ControlNetLoader", "Canny", "ControlNetApplyAdvanced"} <= classes
        assert not np.array_equal(pixels(plain.images[0]), pixels(guided.images[0]))
        assert guided.record["controlnets"][0]["model"]["name"] == TINY_CONTROLNET
        assert verify_folder(tmp_path / "guided").ok
        records, _ = read_logged_records(tmp_path / "guided")
        assert rerun_jobs(select_for_rerun(records, "all"), backend)["verdict"].tolist() == [BIT_EXACT]
        fake.controlnets = ["other.safetensors"]
        with pytest.raises(InputError, match="ControlNet tiny-sdxl-controlnet.safetensors is not on the ComfyUI "
                                             "server .*available: other.safetensors"):
            generate(out_dir=tmp_path / "missing", controlnets=[unit(control_image)], **kwargs)
        assert not (tmp_path / "missing").exists()


# ---- the lab ----
def test_the_lab_form_shows_the_map_and_queues_a_controlnet_job(engine, control_image, tmp_path):
    from sdxl_nb.ui.uploads import upload_value
    from tests.ui_helpers import lab_for, small_form, status_kind

    lab = lab_for(engine, tmp_path / "out")
    panel = lab.generate
    small_form(panel.form, seed=9)
    picker = panel.form.controlnets
    row = picker.add_unit()
    assert TINY_CONTROLNET in row.model.options
    row.show_map((64, 64))
    assert status_kind(row.status) == "error"  # no image yet
    row.upload.value = upload_value(control_image)
    row.low.value = 300
    row.preview_button.click()
    assert status_kind(row.status) == "error" and "out of range" in row.status.value
    row.low.value = 100
    row.preview_button.click()
    assert status_kind(row.status) == "ok"
    shown = Image.open(__import__("io").BytesIO(row.preview.value))
    panel.generate.click()
    assert panel.wait(120)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    kept = tmp_path / "out" / "inputs" / f"{sha256_file(control_image)}.png"
    assert record["controlnets"][0]["image"]["path"] == f"inputs/{kept.name}"  # relative to the output folder
    with Image.open(tmp_path / "out" / record["control_maps"][0]["path"]) as saved:
        assert np.array_equal(pixels(saved), pixels(shown))  # the map shown is the map the job read
    assert verify_folder(tmp_path / "out").ok
    (job,) = lab.queue.jobs()
    assert f"ControlNet {TINY_CONTROLNET}" in job.label  # the Queue tab tells it from the same job without


def test_reusing_an_image_fills_the_units_and_reruns_the_same_job(engine, control_image, tmp_path):
    from sdxl_nb.jobs.generate import generate
    from sdxl_nb.record.png_params import read_png_parameters
    from tests.ui_helpers import lab_for

    made = generate(out_dir=tmp_path / "first", engine=engine, prompt="a fox", seed=6, **SMALL, controlnets=[
        unit(control_image, weight=0.7, start=0.1, low_threshold=60, high_threshold=180),
        unit(control_image, preprocessor="none", end=0.5)])
    from sdxl_nb.record.png_inputs import local_inputs

    params = read_png_parameters(made.paths[0])  # Reuse's rule: inputs by sha256 from the image's folder's inputs/
    fields, left_out = local_inputs(params.fields, params.inputs, made.paths[0].parent)
    panel = lab_for(engine, tmp_path / "out").generate
    assert left_out == [] and panel.reuse(fields) == []
    rows = panel.form.controlnets.units
    assert [(r.preprocessor.value, r.weight.value, r.start.value, r.end.value) for r in rows] == [
        ("canny", 0.7, 0.1, 1.0), ("none", 1.0, 0.0, 0.5)]
    assert (rows[0].low.value, rows[0].high.value) == (60, 180)
    panel.generate.click()  # the same request again: the same pixels
    assert panel.wait(300)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "ok" and record["controlnets"][0]["settings"] == made.record["controlnets"][0]["settings"]
    with Image.open(tmp_path / "out" / record["images"][0]["path"]) as image:
        assert np.array_equal(pixels(image), pixels(made.images[0]))
    gone = dict(fields, controlnets=[dict(fields["controlnets"][0], image=str(tmp_path / "gone.png")),
                                     dict(fields["controlnets"][1], model="not-here")])
    skipped = panel.reuse(gone)
    assert len(skipped) == 2 and "is not there any more" in skipped[0] and "not-here is not found" in skipped[1]
    assert len(rows) == 1 and not rows[0].upload.value  # the unit stays, without an image: Generate says so
    assert panel.reuse({k: v for k, v in fields.items() if k != "controlnets"}) == [] and rows == []


def test_the_sweep_tab_guides_every_cell_with_its_controlnet(engine, control_image, tmp_path):
    from sdxl_nb.audit import run_audit
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.ui.sweep_panel import SweepPanel
    from sdxl_nb.ui.uploads import upload_value

    panel = SweepPanel(JobQueue(engine=engine, out_dir=tmp_path / "out"))
    panel.form.prompt.value, panel.form.steps.value = "a guided sweep", 2
    panel.form.set_size(64, 64)
    panel.form.use_seed(4)
    row = panel.controlnets.add_unit()
    row.upload.value = upload_value(control_image)
    row.weight.value = 0.9
    panel.x_field.value, panel.x_values.value = "cfg", "3, 6"
    job = panel.submit()
    assert job is not None and job.wait(300) and job.status == "ok", panel.status.value
    cells = [r for r in read_records(tmp_path / "out" / "jobs.log") if r["mode"] != "sweep"]
    assert [(r["cfg"], r["controlnets"][0]["weight"]) for r in cells] == [(3, 0.9), (6, 0.9)]
    kept = tmp_path / "out" / "inputs" / f"{sha256_file(control_image)}.png"
    assert {r["controlnets"][0]["image"]["path"] for r in cells} == {f"inputs/{kept.name}"}
    assert verify_folder(tmp_path / "out").ok
    assert run_audit(tmp_path / "out", rerun="all", engine=engine).problems() == []  # each cell re-runs bit-exact


def test_the_memory_check_counts_each_controlnets_weights(control_image):
    from sdxl_nb.config.controlnets import tiny_controlnet
    from sdxl_nb.request.control import controlnet_weight_bytes
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    resolved = prepare(GenerationRequest(prompt="x", seed=1, controlnets=[unit(control_image), unit(control_image)],
                                         **SMALL))
    on_disk = tiny_controlnet().weights_file().stat().st_size  # saved in float32
    half = controlnet_weight_bytes(resolved.controlnets, "float16")
    assert list(half) == ["controlnet 0", "controlnet 1"]
    assert on_disk // 2 - 65536 < half["controlnet 0"] <= on_disk // 2  # parameters x 2 bytes (the header aside)
    assert controlnet_weight_bytes(resolved.controlnets, "float32")["controlnet 1"] == 2 * half["controlnet 1"]


# ---- annotators (controlnet-aux) ----
def test_lineart_standard_needs_no_weights_and_reruns_bit_exact(run, engine, control_image, tmp_path):
    result = run(prompt="a fox", out_dir=tmp_path, controlnets=[unit(control_image, preprocessor="lineart_standard")])
    record = result.record
    assert record["controlnets"][0]["settings"] == {"processor_res": 512}
    with Image.open(tmp_path / record["control_maps"][0]["path"]) as saved:
        lines = np.asarray(saved)
    assert lines.shape == (64, 64, 3) and lines[32, 14:18].max() > 100 and lines[2:10, 2:10].max() < 50
    with Image.open(result.paths[0]) as png:
        assert "Module: lineart_standard" in png.text["parameters"] and "Processor Res: 512" in png.text["parameters"]
    keep_inputs(tmp_path, control_image)
    records, _ = read_logged_records(tmp_path)
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]


def test_an_annotator_reads_its_weights_from_the_local_folder(run, engine, control_image, tmp_path, monkeypatch):
    """lineart_realistic with stand-in weights (controlnet-aux's own Generator, fixed random values): the whole path
    from the folder to the saved map; a folder without one of its files is one line naming that file."""
    import torch
    from controlnet_aux.lineart import Generator

    folder = tmp_path / "annotators"
    folder.mkdir()
    for seed, name in enumerate(("sk_model.pth", "sk_model2.pth")):
        torch.manual_seed(seed)
        torch.save(Generator(3, 1, 3).state_dict(), folder / name)
    monkeypatch.setenv("SDXL_NB_ANNOTATORS", str(folder))
    result = run(prompt="a fox", out_dir=tmp_path / "out", controlnets=[unit(control_image, preprocessor="lineart")])
    entry = result.record["controlnets"][0]
    assert entry["preprocessor"] == "lineart_realistic"  # A1111's name for the short one
    assert entry["annotator_files"] == {name: sha256_file(folder / name) for name in ("sk_model.pth", "sk_model2.pth")}
    assert (tmp_path / "out" / entry["map"]).is_file() and verify_folder(tmp_path / "out").ok
    records, _ = read_logged_records(tmp_path / "out")
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]
    (folder / "sk_model2.pth").unlink()
    with pytest.raises(InputError, match=f"preprocessor 'lineart_realistic' needs sk_model2.pth in {folder}"):
        run(prompt="a fox", out_dir=tmp_path / "never", controlnets=[unit(control_image, preprocessor="lineart")])
    assert not (tmp_path / "never").exists()


def test_comfy_export_refuses_an_annotator_it_has_no_stock_node_for(control_image, capsys):
    assert main(["comfy-export", "--prompt", "a fox", "--seed", "1", "--controlnet", TINY_CONTROLNET,
                 "--control-image", str(control_image), "--control-type", "lineart_standard"]) == 2
    assert "ComfyUI has no stock node for preprocessor 'lineart_standard'" in capsys.readouterr().err


def test_a_controlnet_changed_since_the_job_is_reported_as_drift(run, control_image, tmp_path, monkeypatch):
    import shutil

    from sdxl_nb.audit import file_drift
    from sdxl_nb.config.tiny_controlnet import ensure_tiny_controlnet

    folder = tmp_path / "controlnets"
    shutil.copytree(ensure_tiny_controlnet(), folder / "mine")
    monkeypatch.setenv("SDXL_NB_CONTROLNETS", str(folder))
    run(prompt="a fox", out_dir=tmp_path / "out", controlnets=[unit(control_image, model="mine")])
    records, _ = read_logged_records(tmp_path / "out")
    assert file_drift(records).empty
    weights = folder / "mine" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    (row,) = file_drift(records).itertuples()
    assert "ControlNet 'mine'" in row.message and "changed since 1 job(s) used it" in row.message


def test_a_single_file_controlnet_loads_offline_with_the_models_own_config(run, control_image, tmp_path, monkeypatch):
    """The diffusers key layout in one .safetensors (as shared for A1111/ComfyUI): same pixels as its folder."""
    from safetensors.torch import load_file, save_file

    from sdxl_nb.config.tiny_controlnet import ensure_tiny_controlnet

    folder = tmp_path / "a1111" / "models" / "ControlNet"
    folder.mkdir(parents=True)
    state = load_file(str(ensure_tiny_controlnet() / "diffusion_pytorch_model.safetensors"))
    save_file(state, str(folder / "my-canny.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("controlnet_mid_block")},
              str(folder / "other-layout.safetensors"))
    monkeypatch.setenv("SDXL_NB_CONTROLNETS", str(tmp_path / "a1111"))
    embedded = run(prompt="a fox", out_dir=tmp_path / "embedded", controlnets=[unit(control_image)])
    single = run(prompt="a fox", out_dir=tmp_path / "single", controlnets=[unit(control_image, model="my-canny")])
    assert single.record["controlnets"][0]["model"]["path"].endswith("my-canny.safetensors")
    assert np.array_equal(pixels(single.images[0]), pixels(embedded.images[0]))
    with pytest.raises(InputError, match="ControlNet 'other-layout' .* does not have the layout of this model's "
                                         r"ControlNets: 2 weight\(s\) missing, 0 unexpected, 0 of another shape") as caught:
        run(prompt="a fox", out_dir=tmp_path / "bad", controlnets=[unit(control_image, model="other-layout")])
    assert "\n" not in str(caught.value) and not (tmp_path / "bad").exists()


def test_controlnets_guide_the_hires_pass_too_with_maps_at_its_size(run, engine, control_image, tmp_path,
                                                                    monkeypatch):
    calls = []
    real = type(engine).call_pipeline

    def spy(self, pipe, **kwargs):
        calls.append((type(pipe).__name__, kwargs.get("control_image", kwargs.get("image"))))
        return real(self, pipe, **kwargs)

    monkeypatch.setattr(type(engine), "call_pipeline", spy)
    hires = dict(hires_scale=2, hires_steps=2, hires_denoise=0.5)
    result = run(prompt="a fox", out_dir=tmp_path / "out", controlnets=[unit(control_image)], **hires)
    (first, first_map), (second, second_map) = calls
    assert (first, second) == ("StableDiffusionXLControlNetPipeline", "StableDiffusionXLControlNetImg2ImgPipeline")
    assert first_map.size == (64, 64) and second_map.size == (128, 128) and result.images[0].size == (128, 128)
    monkeypatch.undo()
    records, _ = read_logged_records(tmp_path / "out")
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]


def extension_short_hash(model: dict) -> str:
    """sd-webui-controlnet's hash (A1111's sd_models.model_hash), computed here on its own: sha256 of the 64 KiB at
    1 MiB of the weights file, 8 hex digits."""
    import hashlib
    from pathlib import Path

    path = Path(model["path"])
    path = path if path.is_file() else sorted(path.glob("*.safetensors"))[0]
    return hashlib.sha256(path.read_bytes()[0x100000:0x110000]).hexdigest()[:8]
