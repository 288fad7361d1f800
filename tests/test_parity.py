"""Parity: each row of request settings runs locally and builds the ComfyUI export; both run the same steps with
the same model and switch at the same step (refiner_split.refiner_plan is the one rule; A1111's apply_refiner and
sample_hr_pass are what it follows). Sampler x schedule type rows also send the pair the record names; img2img and
inpaint rows run the tail of the schedule (diffusers' get_timesteps) on both."""

import pytest

from sdxl_nb.backends.comfy.workflow import build_workflow
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest

REFINER = TINY_REFINER_ID
HIRES = dict(hires_scale=2, hires_steps=3, hires_denoise=0.7)

# (row id, request settings); every row: tiny models, 64 px (128 after a hires pass), 2 to 4 steps.
ROWS = [
    ("refiner-0.5-default", dict(steps=4, refiner=REFINER, refiner_switch=0.5)),
    ("refiner-0.8-dpm2m-karras", dict(steps=4, scheduler="DPM++ 2M Karras", refiner=REFINER, refiner_switch=0.8)),
    ("refiner-0.3-euler", dict(steps=4, scheduler="Euler", refiner=REFINER, refiner_switch=0.3)),
    ("refiner-0.6-by-steps", dict(steps=4, refiner=REFINER, refiner_switch=0.6, refiner_switch_by="steps")),
    ("refiner-0.5-karras-by-steps", dict(steps=4, scheduler="DPM++ 2M Karras", refiner=REFINER,
                                         refiner_switch=0.5, refiner_switch_by="steps")),
    ("hires", dict(steps=2, **HIRES)),
    ("refiner-hires", dict(steps=2, refiner=REFINER, refiner_switch=0.7, **HIRES)),
    ("refiner-hires-by-steps", dict(steps=2, refiner=REFINER, refiner_switch=0.5, refiner_switch_by="steps",
                                    **HIRES)),
    # sampler x schedule type (A1111's Sampler + Schedule type; ComfyUI's sampler_name + scheduler)
    ("euler-sgm-uniform", dict(steps=3, scheduler="Euler", schedule_type="SGM Uniform")),
    ("dpm2m-exponential", dict(steps=3, scheduler="DPM++ 2M", schedule_type="Exponential")),
    ("unipc-simple", dict(steps=3, scheduler="UniPC", schedule_type="Simple")),
    ("ddim-uniform", dict(steps=3, scheduler="DDIM", schedule_type="Uniform")),
    ("dpm2m-sde-normal", dict(steps=3, scheduler="DPM++ 2M SDE", schedule_type="Normal")),
    ("refiner-0.6-euler-sgm-uniform", dict(steps=4, scheduler="Euler", schedule_type="SGM Uniform", refiner=REFINER,
                                           refiner_switch=0.6)),
    ("refiner-hires-dpm2m-karras", dict(steps=2, scheduler="DPM++ 2M", schedule_type="Karras", refiner=REFINER,
                                        refiner_switch=0.7, **HIRES)),
]
# (row id, request settings) of img2img and inpaint: init and mask images are made by the test.
IMAGE_ROWS = [
    ("img2img-0.5", dict(steps=4, strength=0.5)),
    ("img2img-0.75-karras", dict(steps=4, strength=0.75, scheduler="DPM++ 2M", schedule_type="Karras")),
    ("inpaint-original", dict(steps=4, strength=0.75, masked_content="original", mask_blur=4)),
    ("inpaint-fill", dict(steps=4, strength=1.0, masked_content="fill", mask_blur=0)),
    ("inpaint-latent-noise", dict(steps=3, strength=1.0, masked_content="latent noise")),
    ("inpaint-refiner", dict(steps=4, strength=0.9, masked_content="original", refiner=REFINER, refiner_switch=0.6)),
]


def local_passes(engine, monkeypatch, run, fields) -> tuple[list[tuple[str, int]], dict]:
    """(model, steps it ran) of each pipeline call of a local job, counted from its step callbacks, and its record."""
    calls = []
    real = engine.call_pipeline

    def counting(pipe, **kwargs):
        callback, steps = kwargs.get("callback_on_step_end"), []
        if callback is not None:
            def counted(p, i, t, values):
                steps.append(i)
                return callback(p, i, t, values)
            kwargs["callback_on_step_end"] = counted
        result = real(pipe, **kwargs)
        calls.append(("refiner" if pipe.text_encoder is None else "base", len(steps)))
        return result

    monkeypatch.setattr(engine, "call_pipeline", counting)
    record = run(prompt="a fox", **fields).record
    return calls, record


def graph_passes(graph: dict) -> tuple[list[tuple[str, int]], list[int]]:
    """(model, steps it runs) of each sampler node of a ComfyUI graph, in run order, and the refiner's start steps."""
    passes, switches = [], []
    for node_id in sorted(graph, key=int):
        node = graph[node_id]
        if node["class_type"] not in ("KSampler", "KSamplerAdvanced"):
            continue
        inputs = node["inputs"]
        model = "refiner" if graph[inputs["model"][0]]["_meta"]["title"] == "Refiner checkpoint" else "base"
        if node["class_type"] == "KSampler":
            passes.append((model, inputs["steps"]))
            continue
        passes.append((model, min(inputs["end_at_step"], inputs["steps"]) - inputs["start_at_step"]))
        if model == "refiner":
            switches.append(inputs["start_at_step"])
    return passes, switches


@pytest.mark.parametrize("fields", [fields for _row, fields in ROWS], ids=[row for row, _fields in ROWS])
def test_local_run_and_comfy_export_split_alike(engine, monkeypatch, run, fields):
    local, record = local_passes(engine, monkeypatch, run, fields)
    resolved = prepare(GenerationRequest(prompt="a fox", width=64, height=64, seed=1, **fields))
    graph, switches = graph_passes(build_workflow(resolved).graph)
    assert local == graph
    split = (record.get("refiner") or {}).get("split")
    if fields.get("refiner"):
        assert split["by"] == fields.get("refiner_switch_by", "timestep")
        assert split["pass"] == ("hires" if "hires_scale" in fields else "first")
        assert switches == [split["switch_step"]]
        assert [steps for model, steps in local[-2:]] == [split["base_steps"], split["refiner_steps"]]
        assert split["base_steps"] >= 1 and split["refiner_steps"] >= 1
    else:
        assert split is None and switches == []
    if "hires_scale" in fields:
        assert local[0] == ("base", fields["steps"])  # the first pass is the base's alone (A1111's default)
        assert sum(steps for _model, steps in local[1:]) == fields["hires_steps"]
    assert_same_sampler(build_workflow(resolved).graph, resolved, record)


def assert_same_sampler(graph: dict, resolved, record: dict) -> None:
    """Every sampler node of the export sends the pair the request resolved to, and the record names its label."""
    from sdxl_nb.backends.comfy.workflow import comfy_sampler

    pairs = {(node["inputs"]["sampler_name"], node["inputs"]["scheduler"]) for node in graph.values()
             if node["class_type"] in ("KSampler", "KSamplerAdvanced")}
    assert pairs == {comfy_sampler(resolved)[:2]}
    assert record.get("schedule_type", "Automatic") == resolved.schedule_type


@pytest.fixture
def images(tmp_path):
    """(init image, mask) paths: a gradient and a centred square to repaint."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    init = tmp_path / "init.png"
    Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                              np.full((64, 64), 90, np.uint8)], axis=-1)).save(init)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return str(init), str(tmp_path / "mask.png")


@pytest.mark.parametrize("fields", [fields for _row, fields in IMAGE_ROWS], ids=[row for row, _fields in IMAGE_ROWS])
def test_img2img_and_inpaint_run_the_same_tail_of_the_schedule(engine, monkeypatch, run, images, fields):
    init, mask = images
    fields = dict(fields, init_image=init, **({"mask_image": mask} if "masked_content" in fields else {}))
    local, record = local_passes(engine, monkeypatch, run, fields)
    resolved = prepare(GenerationRequest(prompt="a fox", width=64, height=64, seed=1, **fields))
    graph, switches = graph_passes(build_workflow(resolved).graph)
    assert local == graph
    # diffusers' get_timesteps and A1111 run int(steps x strength) steps of the schedule's tail
    assert sum(steps for _model, steps in local) == int(fields["steps"] * fields["strength"])
    split = (record.get("refiner") or {}).get("split")
    assert switches == ([split["switch_step"]] if split else [])
    assert_same_sampler(build_workflow(resolved).graph, resolved, record)


def test_the_issue_example_switches_at_the_local_step():
    """20 steps of DPM++ 2M Karras at 0.8: the local run's switch is on the timesteps (12 base steps), and the export
    switches there too, not at round(0.8 x 20) = 16; counted by steps it is step 16 on both."""
    for by, step in (("timestep", 12), ("steps", 16)):
        resolved = prepare(GenerationRequest(prompt="a fox", width=64, height=64, seed=1, steps=20,
                                             scheduler="DPM++ 2M Karras", refiner=REFINER, refiner_switch=0.8,
                                             refiner_switch_by=by))
        passes, switches = graph_passes(build_workflow(resolved).graph)
        assert switches == [step] and passes == [("base", step), ("refiner", 20 - step)]


def test_a_comfy_run_records_the_split_its_graph_ran(tmp_path, run):
    from sdxl_nb.backends.comfy.backend import generate_remote
    from sdxl_nb.backends.comfy.workflow import default_checkpoint
    from tests.fake_comfy import FakeComfy
    from tests.local_server import LocalServer

    checkpoint = "sd_xl_base_1.0.safetensors"
    fields = dict(steps=4, scheduler="DPM++ 2M Karras", refiner=REFINER, refiner_switch=0.8)
    fake = FakeComfy(checkpoints=(checkpoint, default_checkpoint(REFINER)))
    with LocalServer(fake.app()) as server:
        result = generate_remote(url=server.url, checkpoint=checkpoint, out_dir=tmp_path / "comfy", prompt="a fox",
                                 width=64, height=64, seed=1, **fields)
    assert result.status == "ok"
    (sent,) = fake.prompts.values()
    _passes, switches = graph_passes(sent["graph"])
    split = result.record["refiner"]["split"]
    assert switches == [split["switch_step"]]
    assert split == run(prompt="a fox", **fields).record["refiner"]["split"]
