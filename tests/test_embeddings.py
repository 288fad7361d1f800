"""Textual-inversion embeddings on tiny-sdxl: found by name in prompts, vectors in place of tokens, recorded with
sha256, TI hashes in PNG parameters, embedding:NAME in the ComfyUI export, wrong files refused before any work."""

import json

import numpy as np
import pytest
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
from sdxl_nb.config.tiny_lora import tiny_embedding_tensors, write_lora
from sdxl_nb.errors import InputError
from sdxl_nb.record.metadata import parse_parameters
from tests.conftest import pixels


@pytest.fixture
def embeddings(tmp_path, monkeypatch):
    root = tmp_path / "webui"  # an A1111 root: its embeddings/ folder is searched
    write_lora(root / "embeddings" / "mystyle.safetensors", tiny_embedding_tensors(3, seed=1))
    write_lora(root / "embeddings" / "badhands.safetensors", tiny_embedding_tensors(2, seed=2))
    write_lora(root / "embeddings" / "wide.safetensors", tiny_embedding_tensors(1, widths=(768, 1280)))
    write_lora(root / "embeddings" / "notsdxl.safetensors", {"emb_params": np.ones((1, 32), np.float32)})
    monkeypatch.setenv("SDXL_NB_EMBEDDINGS", str(root))
    return root / "embeddings"


def test_an_embedding_changes_pixels_and_is_recorded(run, embeddings, tmp_path):
    plain = run(prompt="a fox, mystyle", out_dir=tmp_path / "a", negative_prompt="blurry")
    assert plain.record["embeddings"][0]["name"] == "mystyle" and plain.record["embeddings"][0]["vectors"] == 3
    used = run(prompt="a fox, mystyle", negative_prompt="blurry, badhands", out_dir=tmp_path / "b")
    conditioning = used.record["conditioning"]
    assert conditioning["sent_as"] == "embeddings" and conditioning["prompt"]["embeddings"] == ["mystyle"]
    assert conditioning["negative_prompt"]["embeddings"] == ["badhands"]
    assert [e["name"] for e in used.record["embeddings"]] == ["mystyle", "badhands"]
    with Image.open(used.paths[0]) as image:
        params = parse_parameters(image.text["parameters"])
    sha = {e["name"]: e["sha256"] for e in used.record["embeddings"]}
    assert params["TI hashes"] == f"mystyle: {sha['mystyle'][:12]}, badhands: {sha['badhands'][:12]}"
    assert not np.array_equal(pixels(plain.images[0]), pixels(used.images[0]))


def test_without_the_folder_the_word_is_plain_text(run, embeddings, tmp_path, monkeypatch):
    with_vectors = run(prompt="a fox, mystyle", out_dir=tmp_path / "a")
    monkeypatch.delenv("SDXL_NB_EMBEDDINGS")
    as_text = run(prompt="a fox, mystyle", out_dir=tmp_path / "b")
    assert as_text.record["embeddings"] == [] and as_text.record["conditioning"]["sent_as"] == "text"
    assert not np.array_equal(pixels(with_vectors.images[0]), pixels(as_text.images[0]))


@pytest.mark.parametrize("prompt, message", [
    ("a fox, wide", "has widths clip_l 768 / clip_g 1280"),
    ("a fox, notsdxl", "is not an SDXL embedding"),
])
def test_a_wrong_embedding_is_one_error_before_any_work(run, embeddings, tmp_path, prompt, message):
    with pytest.raises(InputError, match=message):
        run(prompt=prompt, out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_weighted_embedding_rerun_and_comfy_export(run, engine, embeddings, tmp_path):
    from sdxl_nb.backends.comfy.workflow import build_workflow
    from sdxl_nb.request.prepare import prepare
    from sdxl_nb.request.resolve import GenerationRequest

    run(prompt="a fox, (mystyle:1.3)", out_dir=tmp_path)
    records, _ = read_logged_records(tmp_path)
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT]
    resolved = prepare(GenerationRequest(prompt="a fox, mystyle", negative_prompt="badhands", seed=1))
    texts = [n["inputs"]["text"] for n in build_workflow(resolved).graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert texts == ["a fox, embedding:mystyle", "embedding:badhands"]


def test_embeddings_are_listed(embeddings):
    from sdxl_nb.jobs.networks import embedding_listing

    rows = {row["name"]: row for row in embedding_listing()}
    assert rows["mystyle"]["vectors"] == 3 and rows["badhands"]["vectors"] == 2
    assert "not an SDXL embedding" in rows["notsdxl"]["problem"]
    assert json.dumps(rows)  # plain data for the CLI's --json
