"""A secret reaches no file `upscale`, `comfy-export` or `generate` writes (PNG chunks, workflows, logs, stdout)."""

from __future__ import annotations

import json

from PIL import Image

from tests.conftest import SMALL
from tests.hostile import png_with_chunks
from tests.test_secrets_everywhere import MASKED, SECRET, secret_slices, squashed

URL = "https://alice:pa55w0rd-xyz@example.com/model"


def _assert_no_secret(folder, *, skip_inputs: bool = False):
    """Every file under `folder` (names, bytes, PNG text chunks) is free of the secret."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert files
    for path in files:
        relative = path.relative_to(folder)
        if skip_inputs and relative.parts[0] == "inputs":
            continue  # the user's own source, kept byte for byte: the record's sha256 is its sha256
        assert not any(piece in squashed(str(relative)) for piece in secret_slices()), path
        data = path.read_bytes()
        assert SECRET.encode() not in data and b"pa55w0rd-xyz" not in data, path
        if path.suffix == ".png":
            with Image.open(path) as image:
                for key, value in dict(image.text).items():
                    assert SECRET not in key + value and "pa55w0rd-xyz" not in value, (path, key)
    return files


def _source_png(tmp_path):
    parameters = (f"a fox {SECRET} at {URL}\nNegative prompt: blurry {SECRET}\n"
                  "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8, Model: x")
    return png_with_chunks(tmp_path / "source.png", {"parameters": parameters}, compressed=False)


def test_upscale_masks_the_sources_parameters_api_and_cli(engine, tmp_path, monkeypatch, capsys):
    from sdxl_nb.cli import main
    from sdxl_nb.jobs.upscale import upscale

    monkeypatch.setenv("HF_TOKEN", SECRET)
    source = _source_png(tmp_path)
    assert SECRET.encode() in source.read_bytes()  # the hostile source really holds it, unmasked
    api = tmp_path / "api"
    result = upscale(source, scale=2, out_dir=api, engine=engine)
    with Image.open(result.paths[0]) as image:
        parameters = image.text["parameters"]
    assert parameters.startswith(f"a fox {MASKED} at https://***@example.com/model\nNegative prompt: blurry {MASKED}")
    _assert_no_secret(api, skip_inputs=True)
    assert (api / "inputs").is_dir()

    cli = tmp_path / "cli"
    assert main(["upscale", str(source), "--scale", "2", "--out", str(cli)]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    _assert_no_secret(cli, skip_inputs=True)


def test_comfy_export_masks_a_token_typed_into_the_prompt_in_the_file_stdout_and_notes(tmp_path, monkeypatch, capsys):
    from sdxl_nb.cli import main

    monkeypatch.setenv("HF_TOKEN", SECRET)
    out = tmp_path / "workflow.json"
    argv = ["comfy-export", "--prompt", f"a fox {SECRET} {URL}", "--negative", f"no {SECRET}", "--model", "tiny-sdxl",
            "--scheduler", "LMS", "--steps", "2", "--width", "64", "--height", "64", "--seed", "1"]
    assert main([*argv, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and "note:" in captured.err
    text = out.read_text(encoding="utf-8")
    assert SECRET not in text and "pa55w0rd-xyz" not in text
    texts = [node["inputs"].get("text") for node in json.loads(text).values() if node["class_type"] == "CLIPTextEncode"]
    assert f"a fox {MASKED} https://***@example.com/model" in texts and f"no {MASKED}" in texts
    assert main(argv) == 0  # to stdout: what a shell redirect writes to a file
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and json.loads(captured.out) == json.loads(text)


def test_the_workflow_a_backend_sends_keeps_the_prompt_only_the_export_masks(monkeypatch):
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    monkeypatch.setenv("HF_TOKEN", SECRET)
    workflow = build_workflow(prepare(GenerationRequest(prompt=f"a fox {SECRET}", model="tiny-sdxl", seed=1, **SMALL)))
    assert SECRET in json.dumps(workflow.graph)  # the server draws what was typed
    assert SECRET not in workflow.export_text() and MASKED in workflow.export_text()


def test_generate_cli_writes_the_secret_nowhere(engine, tmp_path, monkeypatch, capsys):
    from sdxl_nb.cli import main

    monkeypatch.setenv("HF_TOKEN", SECRET)
    folder = tmp_path / "out"
    argv = ["generate", "--prompt", f"a fox {SECRET} {URL}", "--negative", f"no {SECRET}", "--model", "tiny-sdxl",
            "--steps", "2", "--width", "64", "--height", "64", "--seed", "1", "--out", str(folder)]
    assert main(argv) == 0 and main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and MASKED in captured.out
    files = _assert_no_secret(folder)
    assert {path.name for path in files} >= {"jobs.log", "app_events.log"}
