"""The decode under our control: pixel-identical to the pipelines' own, and the NaN/black-image guard."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from sdxl_nb.backends.local.calls import CallArguments
from sdxl_nb.backends.local.decode import _bad_rows
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model
from sdxl_nb.errors import GenerationError
from sdxl_nb.record.joblog import read_records
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import SMALL, pixels


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "init.png")
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return {"txt2img": {}, "img2img": {"init_image": str(folder / "init.png"), "strength": 0.6},
            "inpaint": {"init_image": str(folder / "init.png"), "mask_image": str(folder / "mask.png")}}


def own_decode(engine, loaded, fields):
    """The same request through the pipeline's own decode (output_type="pil")."""
    resolved = prepare(GenerationRequest(**{**SMALL, **fields}))
    pipe = engine.pipeline(loaded, resolved.mode)
    pipe.scheduler = engine.make_scheduler(loaded, resolved.scheduler.cls, resolved.scheduler.kwargs)
    calls = CallArguments(pipe, resolved, plain=True)  # the engine's inputs (an inpaint's blurred mask, fill...)
    args = {**calls.shared, "prompt": resolved.styled_prompt,
            "negative_prompt": resolved.effective_negative_prompt or None, "output_type": "pil"}
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in resolved.seeds]
    images = pipe(**args, num_images_per_prompt=resolved.batch, generator=generators).images
    # an inpaint's original is pasted back after either decode (A1111's overlay), as the engine does
    return images if calls.inpaint is None else [calls.inpaint.finish(image) for image in images]


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
def test_our_decode_is_pixel_identical_to_the_pipelines(engine, run, inputs, mode):
    loaded = engine.load(find_model("tiny-sdxl", load_presets()))
    fields = dict(prompt=f"identity {mode}", batch=2, seed=21, steps=3, **inputs[mode])
    ours = run(**fields)
    theirs = own_decode(engine, loaded, fields)
    assert ours.record["mode"] == mode and len(theirs) == 2
    for a, b in zip(ours.images, theirs, strict=True):
        assert np.array_equal(pixels(a), pixels(b))


@pytest.fixture(scope="module")
def half_engine(isolated_env):
    """A float16 engine on the CPU with its own copy of the tiny model (tests may damage its VAE)."""
    from sdxl_nb.backends.local import Engine

    engine = Engine(device="cpu", dtype=torch.float16)
    engine.load(find_model("tiny-sdxl", load_presets()))
    return engine


@pytest.mark.filterwarnings("ignore:`upcast_vae` is deprecated:FutureWarning")  # diffusers' own decode path
def test_force_upcast_vae_decodes_like_the_pipeline(half_engine, tmp_path):
    from sdxl_nb.jobs.generate import generate

    loaded = half_engine.loaded["tiny-sdxl"]
    vae = loaded.pipe.vae
    vae.register_to_config(force_upcast=True)  # the real SDXL VAE's setting: decode in float32
    try:
        fields = dict(prompt="upcast", seed=5)
        ours = generate(out_dir=tmp_path, engine=half_engine, **SMALL, **fields)
        theirs = own_decode(half_engine, loaded, fields)
        assert vae.dtype == torch.float16  # put back after the decode, as diffusers does
        assert np.array_equal(pixels(ours.images[0]), pixels(theirs[0]))
        assert not any("float16 without an fp16-safe VAE" in w for w in ours.record["warnings"])
    finally:
        vae.register_to_config(force_upcast=False)


def test_nan_latents_are_never_saved(engine, run, tmp_path):
    def poison_second_image(stage, indices, **context):
        if stage == "latents" and indices == [1]:
            return context["latents"] * float("nan")
        return None

    engine.fault_hook = poison_second_image
    try:
        with pytest.raises(GenerationError, match=r"1 image\(s\) came out NaN or black .* not saved \(seeds 8\)") as caught:
            run(prompt="nan", batch=3, seed=7, chunk_size=1, out_dir=tmp_path)
    finally:
        engine.fault_hook = None
    result = caught.value.result
    (record,) = read_records(tmp_path / "jobs.log")
    assert record == result.record and record["status"] == "failed"
    assert [i["seed"] for i in record["images"]] == [7, 9]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(i["path"] for i in record["images"])
    assert any("image 2 (seed 8) not saved: NaN/inf latents" in w for w in record["warnings"])
    assert any("bad decode already in float32" in e for e in record["events"])
    assert all(pixels(image).max() > 0 for image in result.images)


def test_float16_vae_overflow_is_decoded_again_in_float32(half_engine, tmp_path):
    from sdxl_nb.jobs.generate import generate

    vae = half_engine.loaded["tiny-sdxl"].pipe.vae
    original = vae.decoder.conv_in.weight.detach().clone()
    # Activations past float16's 65504 become inf, then NaN in the group norms: the SDXL-VAE failure.
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(3e4)
    try:
        result = generate(out_dir=tmp_path, engine=half_engine, prompt="overflow", batch=2, seed=3, **SMALL)
    finally:
        with torch.no_grad():
            vae.decoder.conv_in.weight.copy_(original)
    record = result.record
    assert record["status"] == "ok" and len(result.paths) == 2
    assert any("VAE in float16 gave image 1 (seed 3): NaN/inf after the VAE decode" in e
               and "decoded again with the VAE in float32: fixed image 1 (seed 3), image 2 (seed 4)" in e
               for e in record["events"]), record["events"]
    assert any("decoded again in float32" in w for w in record["warnings"])
    assert any("float16 without an fp16-safe VAE" in w for w in record["warnings"])  # the lint said so up front
    assert vae.dtype == torch.float16
    assert all(np.isfinite(pixels(image)).all() and pixels(image).max() > 0 for image in result.images)


def test_all_black_decodes_are_dropped(engine, run, tmp_path, monkeypatch):
    from sdxl_nb.backends.local import decode

    real = decode.decode_latents

    def black(pipe, latents, **kwargs):
        return torch.full_like(real(pipe, latents, **kwargs), -1.0)  # -1 is black after denormalizing

    monkeypatch.setattr(decode, "decode_latents", black)
    with pytest.raises(GenerationError, match="NaN or black") as caught:
        run(prompt="black", seed=2, out_dir=tmp_path)
    assert caught.value.result.paths == [] and not list(tmp_path.glob("*.png"))
    assert "an all-black image" in " ".join(read_records(tmp_path / "jobs.log")[0]["warnings"])


def test_chunk_size_must_fit_the_batch(run):
    from sdxl_nb.errors import InputError

    with pytest.raises(InputError, match=r"chunk_size 0 is out of range; accepted: 1 to the batch \(2\)"):
        run(prompt="x", batch=2, chunk_size=0)


def _bad_rows_elementwise(latents, image):
    """The guard's verdicts computed value by value: what the one-pass extremes must agree with."""
    verdicts = []
    for latent, decoded in zip(latents, image, strict=True):
        pixels_out = (decoded.float() / 2 + 0.5).clamp(0, 1).mul(255).round()
        verdicts.append("NaN/inf latents" if not torch.isfinite(latent).all()
                        else "NaN/inf after the VAE decode" if not torch.isfinite(decoded).all()
                        else "an all-black image" if pixels_out.max() == 0 else None)
    return verdicts


SPECIAL = [float("nan"), float("inf"), -float("inf"), -1.0, -1.0 + 1 / 255, -1.0 + 1 / 255 + 1e-6, 0.0, 1.0]


@hypothesis_settings(max_examples=150, deadline=None)
@given(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]), st.integers(0, 2**31 - 1),
       st.lists(st.tuples(st.integers(0, 2), st.integers(0, 47), st.sampled_from(SPECIAL)), max_size=6),
       st.floats(-1.01, 1.0), st.floats(0.0, 0.02))
def test_guard_extremes_agree_with_every_value(dtype, seed, spikes, base, spread):
    generator = torch.Generator().manual_seed(seed)
    image = (base + spread * torch.rand(3, 3, 4, 4, generator=generator)).to(dtype)
    latents = torch.zeros(3, 4, 2, 2, dtype=dtype)
    for row, position, value in spikes:  # NaN, inf and the values around the black threshold, in image or latents
        target = latents if position >= 40 else image
        target[row].view(-1)[position % target[row].numel()] = value
    assert _bad_rows(latents, image) == _bad_rows_elementwise(latents, image)
