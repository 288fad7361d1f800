"""The one weights loader: abused safetensors headers, TorchScript and pickle payloads with every extension, through
load_state_dict, the upscaler CLI commands, annotator folders, ControlNet files, LoRAs and embeddings."""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdxl_nb.backends.local.weights import load_state_dict
from sdxl_nb.config.safetensors_file import header_problem, safetensors_header
from sdxl_nb.errors import InputError
from tests.conftest import PYTHON, python_env
from tests.hostile import (
    ABUSED_HEADERS,
    abused_safetensors,
    pickle_payload,
    safetensors_bytes,
    time_bound,
    torchscript_payload,
)
from tests.tiny_upscaler import tiny_compact_state, write_tiny_upscaler

EXTENSIONS = (".pt", ".pth", ".ckpt", ".bin")


def one_line_error(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and "weights_only" not in text
    return text


# ---- the header reader ----
@pytest.mark.parametrize("name", sorted(ABUSED_HEADERS))
def test_every_abused_header_is_one_input_error_line_naming_the_file(tmp_path, name):
    path = abused_safetensors(tmp_path)[name]
    with time_bound():
        with pytest.raises(InputError) as info:
            safetensors_header(path)
        assert str(path) in one_line_error(info.value)
        assert header_problem(path) == one_line_error(info.value)
        with pytest.raises(InputError, match=f"^LoRA 'x' {path}"):
            load_state_dict(path, what="LoRA 'x'")


def test_a_valid_file_reads_and_a_truncated_one_is_named(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "ok.safetensors"
    save_file({"w": torch.ones(3, 2, dtype=torch.bfloat16), "b": torch.zeros(0)}, str(path), metadata={"k": "v"})
    header = safetensors_header(path)
    assert header["w"] == {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 12]} and header["__metadata__"]
    assert load_state_dict(path, what="x")["w"].shape == (3, 2)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(InputError, match=r"is truncated \(\d+ of \d+ bytes\)"):
        safetensors_header(cut)
    assert safetensors_header(cut, complete=False)["w"]["shape"] == [3, 2]  # what it was meant to hold


def test_a_header_length_past_the_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(safetensors_bytes({}, length=200 * 1024 * 1024))
    with pytest.raises(InputError, match="its header claims 209715200 bytes; at most 104857600 are read"):
        safetensors_header(path)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                     max_leaves=20)
_entry = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from(["F32", "F16", "BOOL", "Q", 3]) | _json,
    "shape": st.lists(st.integers(-3, 2**64), max_size=4) | _json,
    "data_offsets": st.lists(st.integers(-8, 2**64), min_size=0, max_size=3) | _json})
_header = st.dictionaries(st.text(max_size=6), _entry | _json, max_size=4) | _json


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=_header, data=st.binary(max_size=64))
def test_random_json_headers_only_ever_raise_input_error(tmp_path, header, data):
    path = tmp_path / "h.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    with time_bound():
        try:
            safetensors_header(path)
        except InputError as exc:
            one_line_error(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), length=st.none() | st.integers(0, 2**64 - 1))
def test_random_bytes_only_ever_raise_input_error(tmp_path, raw, length):
    path = tmp_path / "r.safetensors"
    path.write_bytes(raw if length is None else length.to_bytes(8, "little") + raw)
    with time_bound():
        try:
            safetensors_header(path)
        except InputError as exc:
            one_line_error(exc)


# ---- PyTorch files ----
@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """A TorchScript and two pickle payloads with every extension; their markers in `markers`."""
    folder = tmp_path_factory.mktemp("payloads")
    markers = folder / "markers"
    markers.mkdir()
    files = {}
    for ext in EXTENSIONS:
        stem = ext[1:]
        files[f"ts-{stem}"] = torchscript_payload(folder / f"ts-{stem}{ext}", markers / f"ts-{stem}")
        files[f"pk-{stem}"] = pickle_payload(folder / f"pk-{stem}{ext}", markers / f"pk-{stem}")
        files[f"legacy-{stem}"] = pickle_payload(folder / f"legacy-{stem}{ext}", markers / f"legacy-{stem}",
                                                 legacy=True)
    return SimpleNamespace(folder=folder, markers=markers, files=files)


def test_payloads_of_every_extension_are_refused_before_their_code_runs(payloads):
    for name, path in payloads.files.items():
        with pytest.raises(InputError) as info:
            load_state_dict(path, what="upscaler 'x'")
        text = one_line_error(info.value)
        assert text.startswith(f"upscaler 'x' {path} ")
        assert ("TorchScript program" in text) if name.startswith("ts-") else ("Python objects besides tensors" in text)
    assert not any(payloads.markers.iterdir())


def test_plain_state_dicts_load_and_other_shapes_are_refused(tmp_path):
    import torch

    state = tiny_compact_state()
    for name, value in {"plain.pt": state, "nested.pth": {"params_ema": state, "epoch": 3},
                        "legacy.ckpt": state}.items():
        torch.save(value, tmp_path / name, _use_new_zipfile_serialization=name != "legacy.ckpt")
        loaded = load_state_dict(tmp_path / name, what="x")
        assert set(loaded) == set(value)
    for name, value, reason in (("list.pt", [torch.zeros(1)], "holds a list"),
                                ("notensor.pt", {"a": 1}, "holds no tensors"),
                                ("intkeys.pt", {1: torch.zeros(1)}, "with non-text keys")):
        torch.save(value, tmp_path / name)
        with pytest.raises(InputError, match=f"x {tmp_path / name} is not a plain state dict: .*{reason}"):
            load_state_dict(tmp_path / name, what="x")
    (tmp_path / "junk.bin").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "text.pth").write_text("hello")
    (tmp_path / "weights.onnx").write_bytes(b"")
    for name, reason in (("junk.bin", "is a damaged archive"), ("text.pth", "is not a PyTorch weights file"),
                         ("weights.onnx", "unknown weights format '.onnx'"), ("missing.pt", "cannot be read")):
        with pytest.raises(InputError, match=reason):
            load_state_dict(tmp_path / name, what="x")


def test_no_code_path_passes_weights_only_false():
    root = Path(__file__).resolve().parents[1] / "sdxl_nb"
    offenders = [str(p) for p in root.rglob("*.py") if "weights_only=False" in p.read_text(encoding="utf-8")]
    assert offenders == []


# ---- upscalers ----
def test_a_real_tiny_upscaler_still_loads_in_both_formats_and_nested(tmp_path, monkeypatch):
    import torch

    from sdxl_nb.backends.local.upscale import check_upscaler
    from sdxl_nb.config.upscalers import find_upscaler

    write_tiny_upscaler(tmp_path / "a.safetensors")
    write_tiny_upscaler(tmp_path / "b.pth", scale=4)
    torch.save({"params_ema": tiny_compact_state()}, tmp_path / "c.pt")
    monkeypatch.setenv("SDXL_NB_UPSCALERS", str(tmp_path))
    assert [check_upscaler(find_upscaler(n)) for n in "abc"] == ["RealESRGAN Compact x2", "RealESRGAN Compact x4",
                                                                  "RealESRGAN Compact x2"]


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "sdxl_nb", *args], capture_output=True, text=True, timeout=600,
                          env=python_env(env))


def test_upscaler_payloads_through_every_cli_command_run_nothing_and_write_nothing(payloads, tmp_path):
    from PIL import Image

    env = {"SDXL_NB_UPSCALERS": str(payloads.folder)}
    listed = _cli(["upscalers", "--check", "--json"], env)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    for name in [n for n in payloads.files if n.endswith(("-pt", "-pth"))]:  # the upscaler folder's extensions
        assert "is not an upscaler model" in rows[name]["problem"] and "\n" not in rows[name]["problem"]
    source = tmp_path / "in.png"
    Image.new("RGB", (32, 32), "gray").save(source)
    for args in (["upscale", str(source), "--scale", "2", "--upscaler", "ts-pth", "--out", str(tmp_path / "up")],
                 ["generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                  "--steps", "2", "--hires-scale", "2", "--hires-upscaler", "pk-pt", "--out", str(tmp_path / "gen")]):
        done = _cli(args, env)
        err = done.stderr.strip()
        assert done.returncode == 2, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err and "weights_only" not in err
        assert "TorchScript program" in err or "Python objects besides tensors" in err
    assert not (tmp_path / "up").exists() and not (tmp_path / "gen").exists()
    assert not any(payloads.markers.iterdir())


# ---- annotators (controlnet-aux) ----
def _annotator_folder(folder: Path, payloads) -> Path:
    import shutil

    folder.mkdir()
    shutil.copy(payloads.files["ts-pth"], folder / "sk_model.pth")
    shutil.copy(payloads.files["pk-pth"], folder / "sk_model2.pth")
    return folder


def test_a_hostile_annotator_file_is_refused_before_the_job(run, payloads, tmp_path, monkeypatch):
    from tests.test_controlnet import unit

    pytest.importorskip("controlnet_aux")
    image = tmp_path / "c.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(image)
    monkeypatch.setenv("SDXL_NB_ANNOTATORS", str(_annotator_folder(tmp_path / "ann", payloads)))
    with pytest.raises(InputError) as info:
        run(prompt="a fox", out_dir=tmp_path / "never", controlnets=[unit(image, preprocessor="lineart")])
    text = one_line_error(info.value)
    assert "preprocessor 'lineart_realistic' weight file" in text and "TorchScript program" in text
    assert not (tmp_path / "never").exists() and not any(payloads.markers.iterdir())


def test_controlnet_aux_loads_its_files_through_the_weights_loader(payloads, tmp_path, monkeypatch):
    """Past the check (a file replaced after it): the detector's own torch.load is the weights loader."""
    pytest.importorskip("controlnet_aux")
    import torch

    from sdxl_nb.request import annotators

    monkeypatch.setenv("SDXL_NB_ANNOTATORS", str(_annotator_folder(tmp_path / "ann", payloads)))
    with pytest.raises(InputError, match="annotator weight file .*sk_model.pth is a TorchScript program"):
        annotators._detector("lineart_realistic")
    assert not any(payloads.markers.iterdir())
    import controlnet_aux.lineart

    assert controlnet_aux.lineart.torch is torch  # the swap ends with the load


def test_an_annotator_failing_at_run_time_is_a_recorded_failed_job_with_no_marker_left(run, tmp_path, monkeypatch):
    pytest.importorskip("controlnet_aux")
    import torch
    from controlnet_aux.lineart import Generator

    from sdxl_nb.errors import GenerationError
    from sdxl_nb.record.joblog import read_records
    from sdxl_nb.record.recovery import MARKER_PREFIX
    from sdxl_nb.request import annotators
    from tests.test_controlnet import unit

    folder = tmp_path / "ann"
    folder.mkdir()
    for name in ("sk_model.pth", "sk_model2.pth"):
        torch.save(Generator(3, 1, 3).state_dict(), folder / name)
    monkeypatch.setenv("SDXL_NB_ANNOTATORS", str(folder))

    def broken(_name):
        raise RuntimeError("the annotator broke")

    monkeypatch.setattr(annotators, "_detector", broken)
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(tmp_path / "c.png")
    out = tmp_path / "out"
    with pytest.raises(GenerationError, match="the annotator broke"):
        run(prompt="a fox", out_dir=out, controlnets=[unit(tmp_path / "c.png", preprocessor="lineart")])
    (record,) = read_records(out / "jobs.log")
    assert record["status"] == "failed" and "the annotator broke" in record["error"]
    assert not list(out.glob(f"{MARKER_PREFIX}*"))


# ---- ControlNet files, LoRAs, embeddings ----
def test_controlnet_lora_and_embedding_paths_refuse_hostile_files(payloads, tmp_path):
    from sdxl_nb.backends.local.controlnet_file import load_controlnet_file
    from sdxl_nb.backends.local.lora import fit_problem
    from sdxl_nb.backends.local.networks import embedding_vectors

    for name in ("ts-pt", "pk-bin"):
        with pytest.raises(InputError) as info:
            load_controlnet_file(payloads.files[name], None, "evil")
        assert one_line_error(info.value).startswith("ControlNet 'evil'")
    abused = abused_safetensors(tmp_path / "abused")
    for name, path in abused.items():
        lora = SimpleNamespace(name="l", path=str(path), sha256="0" * 64)
        with pytest.raises(InputError):
            fit_problem(lora, {}, None, "m")
        embedding = SimpleNamespace(name="e", path=str(path), sha256=name)
        with pytest.raises(InputError, match=f"embedding 'e' {path}"):
            embedding_vectors(SimpleNamespace(vectors={}), [embedding])
    assert not any(payloads.markers.iterdir())
