"""Step previews: the latent->RGB approximation and the throttle inside Engine.run."""

import torch

from sdxl_nb.backends.base import RunHooks, RunPlan
from sdxl_nb.backends.local.preview import SDXL_LATENT_RGB, latents_to_rgb
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest


def test_latents_map_linearly_to_rgb_at_one_eighth_size():
    latents = torch.zeros(2, 4, 8, 16)
    latents[0, 0] = 1.0
    image = latents_to_rgb(latents)
    assert image.size == (16, 8) and image.mode == "RGB"
    expected = tuple(int((f + 1) * 127.5) for f in SDXL_LATENT_RGB[0])
    assert all(abs(a - b) <= 1 for a, b in zip(image.getpixel((3, 3)), expected, strict=True))


def test_engine_sends_throttled_previews(engine):
    loaded = engine.load(find_model("tiny-sdxl", load_presets()))
    resolved = prepare(GenerationRequest(prompt="a fox", model="tiny-sdxl", width=64, height=64, steps=4, seed=1))
    every, throttled = [], []
    plan = RunPlan.for_request(resolved)
    engine.preview_interval_s = 0
    engine.run(plan, loaded, RunHooks(on_preview=lambda image, p: every.append((image.size, p["step"]))))
    engine.preview_interval_s = 3600
    engine.run(plan, loaded, RunHooks(on_preview=lambda image, p: throttled.append(p["step"])))
    engine.preview_interval_s = 0.5
    assert every == [((8, 8), 1), ((8, 8), 2), ((8, 8), 3), ((8, 8), 4)]
    assert throttled == [1, 4]  # the first step, then nothing until the last
