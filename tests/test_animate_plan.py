"""Animation planning without torch: seeds per mode, motion phrases, t schedules, loop order, bad input."""

import pytest

from sdxl_nb.config.presets import load_presets
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.animate.plan import (
    MAX_PHRASES,
    AnimationRequest,
    animation_order,
    motion_phrases,
    phrases_per_frame,
    plan_animation,
    schedule_t,
)
from sdxl_nb.request.resolve import MAX_SEED

SMALL = dict(width=64, height=64, steps=2)


def plan(**fields):
    return plan_animation(AnimationRequest(**{"prompt": "a fox", **SMALL, **fields}), load_presets())


def test_seed_walk_uses_base_plus_i_and_one_motion_phrase_per_frame_by_default():
    p = plan(mode="seed-walk", frames=5, seed=40)
    phrases = load_presets().motion_phrases
    assert p.seeds == [40, 41, 42, 43, 44]
    assert [f.phrases for f in p.frames] == [(phrases[i],) for i in range(5)]
    assert all(f.prompt == f"a fox, {phrases[i]}" for i, f in enumerate(p.frames))
    assert all(f.t is None and f.seed_end is None for f in p.frames) and p.t_values is None
    assert p.variation == 0.3 and p.phrases_per_frame == 1
    assert any("variation 0.3 (lab default)" in note for note in p.notes)


@pytest.mark.parametrize("variation, count", [(0, 0), (0.1, 1), (0.34, 2), (0.5, 2), (0.67, 3), (1, MAX_PHRASES)])
def test_variation_sets_how_many_motion_phrases(variation, count):
    assert phrases_per_frame(variation) == count
    p = plan(frames=4, seed=1, variation=variation)
    assert all(len(f.phrases) == count and len(set(f.phrases)) == count for f in p.frames)
    if count == 0:
        assert all(f.prompt == "a fox" for f in p.frames)


def test_motion_phrases_rotate_and_never_repeat_within_a_frame():
    phrases = tuple("abcdefgh")
    assert motion_phrases(0, phrases, 3) == ("a", "c", "e")
    assert motion_phrases(7, phrases, 3) == ("h", "b", "d")
    assert motion_phrases(2, ("x", "y"), 3) == ("x", "y")  # fewer phrases than asked: each once


def test_style_is_applied_to_every_frame_prompt():
    p = plan(style="Photoreal", frames=2, seed=1)
    assert all(f.styled_prompt.startswith(f.prompt + ", photorealistic") for f in p.frames)
    assert p.base.effective_negative_prompt.startswith("cartoon")


def test_slerp_keeps_seed_a_and_travels_t_from_exactly_0_to_1():
    p = plan(mode="slerp", frames=5, seed=3, seed_end=9)
    assert p.seeds == [3] * 5 and {f.seed_end for f in p.frames} == {9}
    assert p.t_values == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(f.styled_prompt == "a fox" and f.styled_prompt_end is None for f in p.frames)


def test_prompt_travel_keeps_the_noise_and_travels_the_prompt():
    p = plan(mode="prompt-travel", frames=3, seed=3, prompt_end="a wolf", style="Cinematic")
    assert p.seeds == [3, 3, 3] and all(f.seed_end is None for f in p.frames)
    assert {f.prompt_end for f in p.frames} == {"a wolf"}
    assert p.frames[0].styled_prompt_end.startswith("cinematic film still, a wolf, shallow depth of field")
    assert p.t_values == [0.0, 0.5, 1.0]


def test_slerp_and_prompt_travel_combine():
    p = plan(mode="slerp", frames=3, seed=1, seed_end=2, prompt_end="a wolf")
    assert all(f.seed_end == 2 and f.prompt_end == "a wolf" for f in p.frames)


def test_ease_in_out_schedule_is_slow_at_the_ends():
    t = schedule_t(5, "ease-in-out")
    assert t[0] == 0.0 and t[-1] == 1.0 and t[2] == pytest.approx(0.5)
    assert t[1] < 0.25 and t == sorted(t)


def test_ping_pong_plays_back_without_repeating_the_ends():
    assert animation_order(4, False) == [0, 1, 2, 3]
    assert animation_order(4, True) == [0, 1, 2, 3, 2, 1]
    assert animation_order(2, True) == [0, 1]
    assert plan(frames=3, seed=1, ping_pong=True).order == (0, 1, 2, 1)


def test_a_random_seed_is_drawn_in_range_and_noted():
    p = plan(frames=6)
    assert 0 <= p.seeds[0] and p.seeds[-1] <= MAX_SEED
    assert p.notes[0] == f"seed {p.seeds[0]} drawn at random"


def test_img2img_applies_to_every_mode(tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64), "gray").save(tmp_path / "init.png")
    p = plan(mode="slerp", frames=2, seed=1, seed_end=2, init_image=str(tmp_path / "init.png"), strength=0.5)
    assert p.base.mode == "img2img" and p.base.strength == 0.5


@pytest.mark.parametrize("fields, message", [
    (dict(frames=1), "frames 1 is out of range; accepted: 2 to 240"),
    (dict(frames=0, mode="slerp", seed_end=2), "frames 0 is out of range"),
    (dict(frames="8"), "frames must be a whole number"),
    (dict(fps=0), "fps 0 is out of range; accepted: greater than 0, at most 50"),
    (dict(fps=-3), "fps -3 is out of range"),
    (dict(fps=120), "fps 120 is out of range"),
    (dict(mode="zoom"), "unknown animation mode 'zoom'; accepted: seed-walk, slerp, prompt-travel"),
    (dict(mode="slerp"), "slerp needs a seed end"),
    (dict(mode="prompt-travel"), "prompt-travel needs a prompt end"),
    (dict(mode="slerp", seed=5, seed_end=5), "seed end equals seed (5)"),
    (dict(mode="prompt-travel", prompt_end="a fox"), "prompt end equals prompt"),
    (dict(mode="slerp", seed_end=-1), "seed end -1 is out of range"),
    (dict(mode="slerp", seed_end=2, variation=0.5), "variation (motion phrases) applies to seed-walk"),
    (dict(seed_end=3), "seed end applies to slerp and prompt-travel, not seed-walk"),
    (dict(prompt_end="x"), "prompt end applies to slerp and prompt-travel"),
    (dict(schedule="ease-in-out"), "schedule applies to slerp and prompt-travel"),
    (dict(mode="slerp", seed_end=2, schedule="cubic"), "unknown schedule 'cubic'"),
    (dict(variation=1.5), "variation 1.5 is out of range; accepted: 0 to 1"),
    (dict(frames=4, seed=MAX_SEED - 2), f"seed {MAX_SEED - 2} is out of range; accepted: 0 to {MAX_SEED - 3}"),
    (dict(batch_size=0), "batch size (frames per pipeline call) 0 is out of range"),
    (dict(frames=3, batch_size=4), "accepted: 1 to 3"),
    (dict(ping_pong="yes"), "ping_pong must be true or false"),
    (dict(width=100), "width 100 must be a positive multiple of 8"),
    (dict(style="nope"), "unknown style 'nope'"),
    (dict(init_image="/no/such.png"), "init image '/no/such.png' does not exist"),
    (dict(strength=0.5), "strength applies only to img2img"),
])
def test_bad_input_is_one_clear_line(fields, message):
    with pytest.raises(InputError) as caught:
        plan(**fields)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_animate_sweep_and_their_cli_verbs_import_without_torch():
    import subprocess

    from tests.conftest import PYTHON, python_env

    code = ("import sys\n"
            "import sdxl_nb.jobs.animate, sdxl_nb.jobs.animate.speed, sdxl_nb.jobs.sweep, sdxl_nb.outputs.grid, sdxl_nb.cli.animate, "
            "sdxl_nb.cli.sweep\n"
            "from sdxl_nb.jobs.animate import AnimationRequest, prepare_animation\n"
            "prepare_animation(AnimationRequest(prompt='x', mode='slerp', seed=1, seed_end=2))\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'ipywidgets') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
