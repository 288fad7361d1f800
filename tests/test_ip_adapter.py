"""IP-Adapter on tiny-sdxl: the tiny adapter and encoder, discovery (folders, HF cache), the effect and scale 0,
several images, every mode, no state left for the next job, bad input in one line, record, PNG parameters, the
ComfyUI refusal, the CLI, the queue and the lab form, audit and exact re-runs."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, SKIPPED, rerun_jobs, select_for_rerun
from sdxl_nb.config.ip_adapters import find_ip_adapter, ip_adapter_listing, list_ip_adapters
from sdxl_nb.config.tiny_ip_adapter import (
    DEMO_IP_ADAPTER,
    DEMO_IP_ADAPTER_PLUS,
    build_ip_adapter_folder,
    copy_demo_ip_adapter,
    tiny_ip_adapter_tensors,
)
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.generate import generate
from sdxl_nb.record.metadata import parse_parameters
from tests.conftest import PYTHON, SMALL, pixels, python_env


@pytest.fixture(scope="module")
def ip_engine(isolated_env):
    """Its own engine: adapters loaded here never touch the shared engine other tests compare pixels with."""
    from sdxl_nb.backends.local import Engine

    return Engine(device="cpu")


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refs")
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / "noise.png")
    Image.new("RGB", (40, 40), (200, 30, 90)).save(folder / "red.png")
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(folder / "mask.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "init.png")
    (folder / "not-an-image.png").write_text("hello")
    return folder


@pytest.fixture
def make(ip_engine, tmp_path):
    def _make(**fields):
        out = fields.pop("out_dir", tmp_path / "out")
        return generate(out_dir=out, engine=fields.pop("engine", ip_engine),
                        **{**SMALL, "seed": 1, "prompt": "a fox", **fields})

    return _make


def with_ip(refs, *names, scale=1.0):
    return dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=[str(refs / n) for n in names or ("noise.png",)], ip_scale=scale)


def test_tiny_adapter_is_deterministic_in_the_h94_layout(isolated_env, tmp_path):
    first, second = tiny_ip_adapter_tensors(), tiny_ip_adapter_tensors()
    assert sorted(first) == sorted(second) and all(np.array_equal(first[k], second[k]) for k in first)
    # one k/v pair per cross-attention layer of tiny-sdxl, numbered as diffusers converts them (1, 3, 5, 7)
    assert sorted(k for k in first if k.startswith("ip_adapter.")) == [
        f"ip_adapter.{i}.{part}.weight" for i in (1, 3, 5, 7) for part in ("to_k_ip", "to_v_ip")]
    assert first["image_proj.proj.weight"].shape == (4 * 64, 32)
    adapter = find_ip_adapter(DEMO_IP_ADAPTER)
    assert adapter.path.endswith(f"sdxl_models/{DEMO_IP_ADAPTER}.safetensors")
    assert (adapter.encoder_path / "config.json").is_file() and adapter.source == "embedded"
    (row,) = [r for r in ip_adapter_listing("tiny-sdxl") if r["name"] == DEMO_IP_ADAPTER]
    assert row["fits"] is True and len(row["a1111_hash"]) == 8


def test_discovery_in_folders_and_the_hf_cache(isolated_env, make, refs, tmp_path, monkeypatch):
    h94 = copy_demo_ip_adapter(tmp_path / "h94", "ip-adapter_sdxl")
    plain = tmp_path / "plain"
    shutil.copytree(h94 / "sdxl_models", plain)
    (plain / "ip-adapter_sdxl.safetensors").rename(plain / "flat.safetensors")
    hub = tmp_path / "hub" / "models--h94--IP-Adapter"
    copy_demo_ip_adapter(hub / "snapshots" / "abc123", "ip-adapter_sdxl_cached")
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("SDXL_NB_IP_ADAPTERS", f"{h94}:{plain}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    found = {a.name: a for a in list_ip_adapters()}
    assert list(found) == [DEMO_IP_ADAPTER_PLUS, DEMO_IP_ADAPTER, "ip-adapter_sdxl", "flat", "ip-adapter_sdxl_cached"]
    assert (found["ip-adapter_sdxl"].subfolder, found["flat"].subfolder) == ("sdxl_models", "")
    assert found["flat"].encoder_path == plain / "image_encoder"
    assert (found["ip-adapter_sdxl_cached"].source, found["ip-adapter_sdxl_cached"].revision) == ("hf-cache", "abc123")
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    ref = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), "teal").save(ref)
    resolved = prepare(GenerationRequest(prompt="x", ip_adapter="ip-adapter_sdxl_cached", ip_images=[str(ref)]))
    assert resolved.ip_adapter.encoder_revision == "abc123" and resolved.ip_adapter.scale == 1.0
    assert "IP-Adapter scale 1 (default)" in resolved.notes
    # the same bytes load the same from each layout: an h94 root, a plain folder, a cache snapshot
    runs = []
    for name in (DEMO_IP_ADAPTER, "ip-adapter_sdxl", "flat", "ip-adapter_sdxl_cached"):
        make(**{**with_ip(refs), "ip_adapter": DEMO_IP_ADAPTER_PLUS})  # another adapter between: each one loads
        runs.append(make(**{**with_ip(refs), "ip_adapter": name}))
        assert any(event.startswith(f"loaded IP-Adapter {name}") for event in runs[-1].record["events"])
    assert all(np.array_equal(pixels(runs[0].images[0]), pixels(run.images[0])) for run in runs[1:])
    assert runs[3].record["ip_adapter"]["image_encoder"]["revision"] == "abc123"


def test_adapter_changes_the_image_scale_zero_equals_none_and_nothing_leaks(make, refs):
    before = make()
    with_adapter = make(**with_ip(refs))
    at_zero = make(**with_ip(refs, scale=0))
    after = make()
    assert not np.array_equal(pixels(before.images[0]), pixels(with_adapter.images[0]))
    # diffusers skips an adapter at scale 0: bit-exact, not merely close
    assert np.array_equal(pixels(before.images[0]), pixels(at_zero.images[0]))
    # the job after an IP-Adapter job is the same job as before it, bit for bit
    assert np.array_equal(pixels(before.images[0]), pixels(after.images[0]))
    assert any("IP-Adapter off" in event for event in after.record["events"])
    assert "ip_adapter" not in after.record and after.record["status"] == "ok"


def test_the_plus_kind_with_its_vit_h_encoder_and_switching_between_adapters(make, refs):
    plus_fields = {**with_ip(refs), "ip_adapter": DEMO_IP_ADAPTER_PLUS}
    before = make()
    plus = make(**plus_fields)
    between = make()
    plus_again = make(**plus_fields)  # the last adapter stays converted in memory
    plain = make(**with_ip(refs))  # another adapter replaces it
    plus_reloaded = make(**plus_fields)
    assert plus.record["ip_adapter"]["image_encoder"]["folder"] == "models/image_encoder"
    assert "Module: ip-adapter_clip_sdxl_plus_vith" in Image.open(plus.paths[0]).text["parameters"]
    assert not np.array_equal(pixels(plus.images[0]), pixels(plain.images[0]))
    assert not np.array_equal(pixels(plus.images[0]), pixels(before.images[0]))
    assert np.array_equal(pixels(before.images[0]), pixels(between.images[0]))
    for again in (plus_again, plus_reloaded):
        assert np.array_equal(pixels(plus.images[0]), pixels(again.images[0]))
    assert any("no reload" in event for event in plus_again.record["events"])
    assert any(event.startswith("loaded IP-Adapter") for event in plus_reloaded.record["events"])


def test_two_images_combine_and_differ_from_each_alone(make, refs):
    both = make(**with_ip(refs, "noise.png", "red.png"))
    alone = [make(**with_ip(refs, name)) for name in ("noise.png", "red.png")]
    for single in alone:
        assert not np.array_equal(pixels(both.images[0]), pixels(single.images[0]))
    assert [image["sha256"] for image in both.record["ip_images"]] == [
        single.record["ip_images"][0]["sha256"] for single in alone]


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_every_mode_and_nothing_leaks_into_the_next(make, refs, mode):
    inputs = {"init_image": str(refs / "init.png")}
    if mode == "inpaint":
        inputs["mask_image"] = str(refs / "mask.png")
    before = make(**inputs)
    guided = make(**inputs, **with_ip(refs, scale=1.5))
    after = make(**inputs)
    assert guided.record["mode"] == mode
    assert not np.array_equal(pixels(before.images[0]), pixels(guided.images[0]))
    assert np.array_equal(pixels(before.images[0]), pixels(after.images[0]))


def test_batch_of_images_each_matches_itself_alone(make, refs):
    batch = make(**with_ip(refs, "red.png"), batch=2)
    second = make(**with_ip(refs, "red.png"), seed=2)
    assert np.array_equal(pixels(batch.images[1]), pixels(second.images[0]))


@pytest.mark.parametrize("fields, message", [
    (dict(ip_adapter="nope", ip_images=["noise.png"]), "unknown IP-Adapter 'nope'"),
    (dict(ip_images=["noise.png"]), "ip_images need an IP-Adapter"),
    (dict(ip_scale=0.5), "ip_scale applies only with an IP-Adapter"),
    (dict(ip_adapter=DEMO_IP_ADAPTER), "needs at least one image"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["noise.png"], ip_scale=2.5), "out of range; accepted: 0 to 2"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["noise.png"], ip_scale=-0.1), "out of range"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["noise.png"], ip_scale=float("nan")), "must be a number"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["noise.png"], ip_scale=True), "must be a number"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["not-an-image.png"]), "is not a readable image"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["missing.png"]), "does not exist"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=["noise.png"] * 9), "accepted: 1 to 8"),
    (dict(ip_adapter=DEMO_IP_ADAPTER, ip_images=7), "ip_images must be an image path or a list"),
])
def test_bad_requests_are_one_line_and_write_nothing(make, refs, tmp_path, fields, message):
    if "ip_images" in fields and isinstance(fields["ip_images"], list):
        fields = {**fields, "ip_images": [str(refs / name) for name in fields["ip_images"]]}
    with pytest.raises(InputError, match=message) as caught:
        make(out_dir=tmp_path / "never", **fields)
    assert "\n" not in str(caught.value) and not (tmp_path / "never").exists()


def _folder(tmp_path, name, tensors=None, encoder=True):
    root = build_ip_adapter_folder(tmp_path / name, name, tensors)
    if not encoder:
        shutil.rmtree(root / "sdxl_models" / "image_encoder")
    return root


def test_broken_adapters_are_refused_before_any_work(make, refs, tmp_path, monkeypatch):
    wrong_width = {k: (v[:, :32] if k.startswith("ip_adapter.") else v) for k, v in tiny_ip_adapter_tensors().items()}
    folders = [_folder(tmp_path, "no-encoder", encoder=False), _folder(tmp_path, "too-narrow", wrong_width),
               _folder(tmp_path, "not-an-adapter", {"weight": np.ones((2, 2), np.float32)})]
    vit_h = copy_demo_ip_adapter(tmp_path / "vith", "ip-adapter_sdxl_vit-h")  # needs models/image_encoder
    monkeypatch.setenv("SDXL_NB_IP_ADAPTERS", ":".join(map(str, [*folders, vit_h])))
    for name, message in (("no-encoder", "needs its CLIP image encoder in .*no-encoder/sdxl_models/image_encoder"),
                          ("too-narrow", "has 4 cross-attention layers of width \\[32\\], but tiny-sdxl has 4 of "
                                         "width 64"),
                          ("not-an-adapter", "is not an IP-Adapter file"),
                          ("ip-adapter_sdxl_vit-h", "models/image_encoder")):
        with pytest.raises(InputError, match=message):
            make(out_dir=tmp_path / "never", ip_adapter=name, ip_images=[str(refs / "noise.png")])
    assert not (tmp_path / "never").exists()
    rows = {row["name"]: row for row in ip_adapter_listing("tiny-sdxl")}
    assert rows[DEMO_IP_ADAPTER]["fits"] and not rows["too-narrow"]["fits"] and not rows["no-encoder"]["fits"]


def test_record_png_parameters_audit_and_exact_reruns(make, refs, tmp_path, ip_engine):
    folder = tmp_path / "jobs"
    guided = make(out_dir=folder, **with_ip(refs, "noise.png", "red.png", scale=0.6), batch=2)
    make(out_dir=folder)  # a plain job after it
    make(out_dir=folder, init_image=str(refs / "init.png"), **with_ip(refs, "red.png", scale=0.8))
    record = guided.record
    ip = record["ip_adapter"]
    assert (ip["name"], ip["scale"], ip["image_encoder"]["folder"]) == (DEMO_IP_ADAPTER, 0.6, "image_encoder")
    assert len(ip["sha256"]) == 64 and len(ip["image_encoder"]["sha256"]) == 64
    assert [image["size"] for image in record["ip_images"]] == [[64, 48], [40, 40]]
    parameters = parse_parameters(Image.open(guided.paths[0]).text["parameters"])
    assert parameters["ControlNet 0"] == (f"Module: ip-adapter_clip_sdxl, Model: {DEMO_IP_ADAPTER} "
                                          f"[{ip['a1111_hash']}], Weight: 0.6, Resize Mode: Crop and Resize, "
                                          "Guidance Start: 0.0, Guidance End: 1.0, Control Mode: Balanced")
    from sdxl_nb.audit import run_audit
    from sdxl_nb.record.recovery import verify_folder

    report = run_audit(folder)
    assert report.integrity.damaged.empty and report.integrity.untracked == []
    assert verify_folder(folder).ok
    records, _ = read_logged_records(folder)
    shutil.copytree(refs, folder / "inputs", dirs_exist_ok=True)  # a re-run reads images only inside the folder
    assert rerun_jobs(select_for_rerun(records, "all"), ip_engine)["verdict"].tolist() == [BIT_EXACT] * 4  # per image
    Image.new("RGB", (40, 40), "blue").save(refs / "changed.png")
    changing = make(out_dir=tmp_path / "changing", **with_ip(refs, "changed.png"))
    kept = tmp_path / "changing" / changing.record["ip_images"][0]["path"]
    Image.new("RGB", (40, 40), "green").save(kept, format="PNG")  # the job's own copy changed since
    records, _ = read_logged_records(tmp_path / "changing")
    table = rerun_jobs(select_for_rerun(records, "all"), ip_engine)
    assert table["verdict"].tolist() == [SKIPPED] and "IP-Adapter image 1" in table["note"][0]
    assert changing.record["status"] == "ok"


def test_comfy_refuses_it_in_one_line(refs, tmp_path):
    from sdxl_nb.backends.base import RunPlan, check_plan
    from sdxl_nb.backends.comfy.backend import ComfyBackend
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    resolved = prepare(GenerationRequest(prompt="a fox", **SMALL, **with_ip(refs)))
    backend = ComfyBackend.__new__(ComfyBackend)
    with pytest.raises(InputError, match="cannot run IP-Adapter .*stock ComfyUI nodes have none"):
        check_plan(backend, RunPlan.for_request(resolved))
    with pytest.raises(InputError, match="cannot carry an IP-Adapter"):
        build_workflow(resolved)


def test_cli_generate_list_and_refusals(isolated_env, refs, tmp_path):
    def cli(*args):
        return subprocess.run([PYTHON, "-m", "sdxl_nb", *args], capture_output=True, text=True, env=python_env(),
                              timeout=300)

    small = ["--model", "tiny-sdxl", "--width", "64", "--height", "64", "--steps", "2", "--seed", "4"]
    done = cli("generate", "--prompt", "a fox", *small, "--ip-adapter", DEMO_IP_ADAPTER, "--ip-image",
               str(refs / "noise.png"), "--ip-image", str(refs / "red.png"), "--ip-scale", "0.6", "--out",
               str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["ip_adapter"]["scale"] == 0.6 and len(record["ip_images"]) == 2
    for args, message in ((["--ip-adapter", "nope", "--ip-image", str(refs / "noise.png")], "unknown IP-Adapter"),
                          (["--ip-adapter", DEMO_IP_ADAPTER, "--ip-image", str(refs / "not-an-image.png")],
                           "not a readable image"),
                          (["--ip-image", str(refs / "noise.png")], "need an IP-Adapter")):
        bad = cli("generate", "--prompt", "a fox", *small, *args, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    export = cli("comfy-export", "--prompt", "a fox", *small, "--ip-adapter", DEMO_IP_ADAPTER, "--ip-image",
                 str(refs / "noise.png"), "-o", str(tmp_path / "wf.json"))
    assert export.returncode == 2 and "cannot carry an IP-Adapter" in export.stderr
    assert not (tmp_path / "wf.json").exists()
    listing = cli("ip-adapters", "--json")
    assert listing.returncode == 0 and DEMO_IP_ADAPTER in [row["name"] for row in json.loads(listing.stdout)]


def test_queue_runs_it(ip_engine, refs, tmp_path):
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.request.resolve import GenerationRequest

    queue = JobQueue(engine=ip_engine, out_dir=tmp_path / "out")
    job = queue.submit(GenerationRequest(prompt="a fox", seed=1, **SMALL, **with_ip(refs, scale=0.5)))
    assert queue.wait_idle(300)
    result = job.result
    assert result.record["ip_adapter"]["scale"] == 0.5 and result.status == "ok"
    with pytest.raises(InputError, match="unknown IP-Adapter"):
        queue.submit(GenerationRequest(prompt="a fox", ip_adapter="nope", ip_images=[str(refs / "red.png")]))


def test_lab_form_keeps_the_uploads_under_inputs_and_submits(ip_engine, refs, tmp_path):
    from sdxl_nb.record.joblog import read_records
    from sdxl_nb.ui.uploads import upload_value
    from tests.ui_helpers import lab_for, small_form, status_kind

    lab = lab_for(ip_engine, tmp_path / "out")
    panel = lab.generate
    small_form(panel.form, seed=2)
    picker = panel.form.ip_adapter
    assert picker.widget in panel.form.sections["IP-Adapter"].widget.children and picker.choice.value == "(none)"
    picker.refresh.click()
    picker.choice.value = DEMO_IP_ADAPTER
    panel.generate.click()  # no image yet: one red line, nothing queued
    assert status_kind(panel.message) == "error" and "needs at least one reference image" in panel.message.value
    picker.images.value = upload_value(refs / "noise.png") + upload_value(refs / "red.png")
    picker.scale.value = 0.7
    panel.generate.click()
    assert panel.wait(300)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    kept = [tmp_path / "out" / "inputs" / f"{image['sha256']}.png" for image in record["ip_images"]]
    assert [image["path"] for image in record["ip_images"]] == [f"inputs/{path.name}" for path in kept]
    assert kept[0].read_bytes() == (refs / "noise.png").read_bytes() and record["ip_adapter"]["scale"] == 0.7


def test_a_sweep_over_the_scale_and_together_with_a_lora(make, refs, ip_engine, tmp_path):
    from sdxl_nb.jobs.sweep import axis, run_sweep
    from sdxl_nb.request.resolve import GenerationRequest

    base = GenerationRequest(prompt="a fox", seed=1, **SMALL, **with_ip(refs))
    swept = run_sweep(base, x=axis("ip_scale", [0.0, 1.0]), out_dir=tmp_path / "sweep", engine=ip_engine)
    plain, guided = make(), make(**with_ip(refs))
    assert [swept.results[(i, 0)].record["ip_adapter"]["scale"] for i in (0, 1)] == [0.0, 1.0]
    assert np.array_equal(pixels(swept.results[(0, 0)].images[0]), pixels(plain.images[0]))
    assert np.array_equal(pixels(swept.results[(1, 0)].images[0]), pixels(guided.images[0]))
    # with a LoRA: both apply, and afterwards the plain job is untouched by either
    both = make(out_dir=tmp_path / "both", loras=[("tiny-sdxl-lora", 0.8)], **with_ip(refs))
    lora_only = make(loras=[("tiny-sdxl-lora", 0.8)])
    assert not np.array_equal(pixels(both.images[0]), pixels(lora_only.images[0]))
    assert np.array_equal(pixels(make().images[0]), pixels(plain.images[0]))
    records, _ = read_logged_records(tmp_path / "both")
    assert rerun_jobs(select_for_rerun(records, "all"), ip_engine)["verdict"].tolist() == [BIT_EXACT]


def test_reusing_an_image_fills_the_picker_and_reruns_the_same_job(ip_engine, refs, tmp_path):
    from sdxl_nb.record.png_params import read_png_parameters
    from tests.ui_helpers import lab_for

    made = generate(out_dir=tmp_path / "first", engine=ip_engine, prompt="a fox", seed=6, **SMALL,
                    **with_ip(refs, "noise.png", "red.png", scale=0.4))
    from sdxl_nb.record.png_inputs import local_inputs

    params = read_png_parameters(made.paths[0])  # Reuse's rule: inputs by sha256 from the image's folder's inputs/
    fields, left_out = local_inputs(params.fields, params.inputs, made.paths[0].parent)
    assert (fields["ip_adapter"], fields["ip_scale"], len(fields["ip_images"])) == (DEMO_IP_ADAPTER, 0.4, 2)
    panel = lab_for(ip_engine, tmp_path / "out").generate
    assert left_out == [] and panel.reuse(fields) == []
    picker = panel.form.ip_adapter
    assert (picker.choice.value, picker.scale.value, len(picker.images.value)) == (DEMO_IP_ADAPTER, 0.4, 2)
    panel.generate.click()  # the same request again: the same pixels
    assert panel.wait(300)
    from sdxl_nb.record.joblog import read_records

    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert [i["sha256"] for i in record["ip_images"]] == [i["sha256"] for i in made.record["ip_images"]]
    with Image.open(tmp_path / "out" / record["images"][0]["path"]) as image:
        assert np.array_equal(pixels(image), pixels(made.images[0]))
    assert panel.reuse({**fields, "ip_adapter": None}) == [] and picker.choice.value == "(none)"


def test_the_sweep_tab_sweeps_the_adapters_scale(ip_engine, refs, tmp_path):
    from sdxl_nb.jobs.queue import JobQueue
    from sdxl_nb.record.joblog import read_records
    from sdxl_nb.ui.sweep_panel import SweepPanel
    from sdxl_nb.ui.uploads import upload_value

    panel = SweepPanel(JobQueue(engine=ip_engine, out_dir=tmp_path / "out"))
    panel.form.prompt.value, panel.form.steps.value = "a fox", 2
    panel.form.set_size(64, 64)
    panel.form.use_seed(1)
    panel.ip_adapter.refresh.click()
    panel.ip_adapter.choice.value = DEMO_IP_ADAPTER
    panel.ip_adapter.images.value = upload_value(refs / "noise.png")
    panel.x_field.value, panel.x_values.value = "ip_scale", "0, 1"
    job = panel.submit()
    assert job is not None and job.wait(300) and job.status == "ok", panel.status.value
    cells = [r for r in read_records(tmp_path / "out" / "jobs.log") if r["mode"] != "sweep"]
    assert [r["ip_adapter"]["scale"] for r in cells] == [0.0, 1.0]


def test_the_memory_check_counts_the_adapter_and_its_image_encoder(make, refs, ip_engine, tmp_path):
    from sdxl_nb.config.ip_adapters import weight_bytes
    from sdxl_nb.request.preflight import memory_check
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    resolved = prepare(GenerationRequest(**{**SMALL, "prompt": "x", **with_ip(refs)}))
    counted = weight_bytes(resolved.ip_adapter, 4)  # this engine runs float32
    make(**with_ip(refs))  # loads the adapter and its encoder
    loaded = ip_engine.loaded["tiny-sdxl"]
    encoder = loaded.ip_adapter.cached["encoder"]
    assert counted["image_encoder"] == sum(p.numel() * p.element_size() for p in encoder.parameters())
    facts = {**ip_engine.memory_facts(loaded), "free_bytes": 2**40}
    facts["component_bytes"].pop("image_encoder", None)  # as before the first IP-Adapter job
    plain = prepare(GenerationRequest(**{**SMALL, "prompt": "x"}))
    guided, alone = (memory_check(r, facts, images_at_once=1, device_name="cpu", folder=tmp_path)
                     for r in (resolved, plain))
    assert guided.estimate.peak_bytes - alone.estimate.peak_bytes >= sum(counted.values())
