"""Two groups of images compared as sets: CMMD on CLIP embeddings; FID and KID through torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import SMALL


def _direct_cmmd(x: np.ndarray, y: np.ndarray) -> float:
    """CMMD written out pair by pair: 1000 x (mean k(x,x') + mean k(y,y') - 2 mean k(x,y)), k a Gaussian of sigma 10."""
    def k(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * 10.0 ** 2))

    def mean(a, b):
        return sum(k(p, q) for p in a for q in b) / (len(a) * len(b))

    return 1000 * (mean(x, x) + mean(y, y) - 2 * mean(x, y))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (3, 4), elements=st.floats(-3, 3)), arrays(np.float64, (5, 4), elements=st.floats(-3, 3)))
def test_cmmd_equals_the_pairwise_definition(x, y):
    from sdxl_nb.analysis.sets import mmd

    assert mmd(x, y) == pytest.approx(_direct_cmmd(x, y), abs=1e-6)
    assert mmd(x, x) == pytest.approx(0, abs=1e-9)


@pytest.fixture(scope="module")
def groups(engine, tmp_path_factory):
    """Two small groups of tiny-sdxl images: two prompts, three seeds each."""
    from sdxl_nb.jobs.generate import generate

    folder = tmp_path_factory.mktemp("groups")
    made = {}
    for prompt in ("a red boat", "a green forest"):
        job = generate(prompt=prompt, model="tiny-sdxl", seed=5, batch=3, out_dir=folder, engine=engine, **SMALL)
        made[prompt] = [folder / image["path"] for image in job.record["images"]]
    return made["a red boat"], made["a green forest"]


def test_cmmd_of_image_groups_is_zero_for_one_set_and_matches_its_embeddings(groups):
    from sdxl_nb.analysis.sets import clip_embeddings, cmmd

    a, b = groups
    assert cmmd(a, a, model="tiny-clip") == pytest.approx(0, abs=1e-6)
    x, y = clip_embeddings(a, model="tiny-clip"), clip_embeddings(b, model="tiny-clip")
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert cmmd(a, b, model="tiny-clip") == pytest.approx(_direct_cmmd(x, y), rel=1e-4)  # the kernel expansion rounds
    assert cmmd(a, b, model="tiny-clip") > 0


def test_fid_and_kid_are_refused_in_one_line_without_the_inception_weights(groups, tmp_path, monkeypatch):
    from sdxl_nb.analysis.sets import fid_kid
    from sdxl_nb.errors import InputError

    monkeypatch.setenv("SDXL_NB_INCEPTION", str(tmp_path / "weights-inception-2015-12-05-6726825d.pth"))
    with pytest.raises(InputError, match="nothing is downloaded") as refused:
        fid_kid(*groups)
    assert "\n" not in str(refused.value)
    monkeypatch.delenv("SDXL_NB_INCEPTION")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(InputError, match="SDXL_NB_INCEPTION"):
        fid_kid(*groups)


def test_fid_and_kid_run_through_torchmetrics_with_a_given_feature_module(groups):
    import torch

    from sdxl_nb.analysis.sets import fid_kid

    class MeanColours(torch.nn.Module):
        """Per-channel means of 4x4 blocks: a stand-in for the Inception's pooled features."""

        def forward(self, images):
            return torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)

    a, b = groups
    same = fid_kid(a, a, feature=MeanColours(), kid_subset=3)
    apart = fid_kid(a, b, feature=MeanColours(), kid_subset=3)
    assert same["fid"] == pytest.approx(0, abs=1e-3)
    assert apart["fid"] > same["fid"] and math.isfinite(apart["kid_mean"])


def test_the_inception_file_is_read_by_the_checked_loader_and_used_when_present(groups, tmp_path, monkeypatch):
    """A random-weight Inception of the real layout stands in for torch-fidelity's file; a pickle that would run
    code is refused before torch-fidelity could unpickle it."""
    import pickle

    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity
    from PIL import Image

    from sdxl_nb.analysis.sets import INCEPTION_FILE, fid_kid
    from sdxl_nb.errors import InputError

    with monkeypatch.context() as patched:  # build the architecture without any weights file or download
        patched.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patched.setattr(torch.nn.Module, "load_state_dict", lambda self, state, *args, **kwargs: None)
        torch.manual_seed(0)
        module = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / INCEPTION_FILE
    torch.save(module.state_dict(), weights)
    monkeypatch.setenv("SDXL_NB_INCEPTION", str(weights))
    from sdxl_nb.analysis.sets import _uint8, inception_features

    features = inception_features()  # FID's own computation is checked with a small module above
    with torch.no_grad():
        assert features(_uint8([Image.open(groups[0][0]).convert("RGB")])).shape == (1, 2048)

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(weights, "wb") as handle:
        pickle.dump({"fc.weight": Payload()}, handle, protocol=2)
    with pytest.raises(InputError):
        fid_kid(*groups)
    assert not marker.exists()
