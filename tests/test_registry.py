"""The registry over HF-layout caches built here: listing, offline loading, missing and broken files."""

import os

import pytest

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import default_model_id, find_model, list_models, locate_model
from sdxl_nb.config.tiny import ensure_tiny_model
from sdxl_nb.errors import InputError, ModelUnavailableError
from tests.conftest import REPO, SMALL
from tests.hf_cache import add_to_cache

BASE = "stabilityai/stable-diffusion-xl-base-1.0"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def presets():
    return load_presets(REPO / "presets.json")


def test_empty_cache_lists_presets_as_missing_and_defaults_to_tiny(hf_cache, presets):
    infos = {i.id: i for i in list_models(presets)}
    assert infos["tiny-sdxl"].available
    assert not infos[BASE].available
    assert infos[BASE].reason == (f"model '{BASE}' is not in the local Hugging Face cache ({hf_cache}); "
                                  f"fetch it where a network exists with: hf download {BASE}")
    assert default_model_id(presets) == "tiny-sdxl"


def test_cached_model_is_listed_with_revision_and_size_and_becomes_default(hf_cache, presets):
    add_to_cache(hf_cache, BASE, ensure_tiny_model())
    add_to_cache(hf_cache, "someone/custom-sdxl", ensure_tiny_model(), commit="f" * 40)
    infos = {i.id: i for i in list_models(presets)}
    assert infos[BASE].available and infos[BASE].revision == "0123456789abcdef0123456789abcdef01234567"
    assert infos[BASE].size_bytes > 1_000_000
    assert infos["someone/custom-sdxl"].available  # found by its model_index.json, not in presets
    assert default_model_id(presets) == BASE


def test_missing_weight_file_is_named(hf_cache, presets):
    snapshot = add_to_cache(hf_cache, BASE, ensure_tiny_model())
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelUnavailableError, match=r"\(snapshot 0123456789\) is missing unet/diffusion_pytorch_model.safetensors; re-fetch it where a network exists with: hf download"):
        locate_model(BASE)


def test_dangling_blob_is_named(hf_cache):
    snapshot = add_to_cache(hf_cache, BASE, ensure_tiny_model())
    os.unlink(os.path.realpath(snapshot / "vae" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ModelUnavailableError, match=r"is missing vae/diffusion_pytorch_model.safetensors; re-fetch"):
        locate_model(BASE)


def test_truncated_weight_file_is_named(hf_cache):
    snapshot = add_to_cache(hf_cache, BASE, ensure_tiny_model())
    blob = os.path.realpath(snapshot / "text_encoder_2" / "model.safetensors")
    with open(blob, "r+b") as handle:
        handle.truncate(os.path.getsize(blob) - 100)
    with pytest.raises(ModelUnavailableError, match=r"text_encoder_2/model.safetensors is truncated \(\d+ of \d+ bytes\)"):
        locate_model(BASE)


def test_unknown_model_lists_the_valid_names(hf_cache, presets):
    with pytest.raises(InputError, match="unknown model 'x/y'; accepted: tiny-sdxl, stabilityai/"):
        find_model("x/y", presets)


def test_generate_from_the_cache_offline(hf_cache, engine, tmp_path):
    from sdxl_nb.jobs.generate import generate

    add_to_cache(hf_cache, "someone/custom-sdxl", ensure_tiny_model(), commit="e" * 40)
    result = generate(prompt="cached", model="someone/custom-sdxl", out_dir=tmp_path, engine=engine, seed=3, **SMALL)
    assert result.record["model"] == {"id": "someone/custom-sdxl", "revision": "e" * 40, "source": "hf-cache",
                                      "dtype": "float32", "vae": None}
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_generate_with_a_model_not_in_the_cache_writes_nothing(hf_cache, engine, tmp_path):
    from sdxl_nb.jobs.generate import generate

    with pytest.raises(ModelUnavailableError, match="hf download"):
        generate(prompt="x", model=BASE, out_dir=tmp_path / "out", engine=engine, **SMALL)
    assert not (tmp_path / "out").exists()
