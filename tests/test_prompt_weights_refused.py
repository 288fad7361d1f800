"""A prompt weight that is no finite number is one InputError line before any work; A1111's syntax is kept otherwise."""

import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdxl_nb.errors import InputError
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.prompt_syntax import WEIGHT_ACCEPTED, parse_attention
from sdxl_nb.request.resolve import GenerationRequest
from tests.conftest import PYTHON, python_env

BAD = {
    "(x:.)": "'.'",
    "(x:1.2.3)": "'1.2.3'",
    "a (x: 1.. ) b": "'1..'",
    "(x:+.)": "'+.'",
    "(x:-...)": "'-...'",
    "((x:1.2.3))": "'1.2.3'",
    "(x:" + "9" * 400 + ")": "too large to be a finite number",
    "(x:-" + "9" * 400 + ")": "too large to be a finite number",
    "((((((((x:" + "9" * 308 + "))))))))": "multiply to an infinite weight",
}


@pytest.mark.parametrize("prompt", list(BAD))
def test_bad_weight_is_one_line_naming_it_and_what_is_accepted(prompt):
    with pytest.raises(InputError) as info:
        prepare(GenerationRequest(prompt=prompt, model="tiny-sdxl"))
    message = str(info.value)
    assert message.startswith("prompt weight") and BAD[prompt] in message and "\n" not in message
    assert f"accepted: {WEIGHT_ACCEPTED}" in message and len(message) < 300


def test_the_negative_prompt_and_a_style_are_checked_too(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"^negative prompt weight '1\.2\.3' in '\(y:1\.2\.3\)' is not a number"):
        prepare(GenerationRequest(prompt="x", negative_prompt="(y:1.2.3)", model="tiny-sdxl"))
    user = tmp_path / "user_presets.json"
    user.write_text('{"styles": [{"name": "Odd", "prompt": "{prompt}, (grain:.)"}]}', encoding="utf-8")
    monkeypatch.setenv("SDXL_NB_USER_PRESETS", str(user))
    with pytest.raises(InputError, match=r"^prompt weight '\.' in '\(grain:\.\)'"):
        prepare(GenerationRequest(prompt="x", style="Odd", model="tiny-sdxl"))


def test_a_prompt_end_is_checked_before_an_animation():
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.jobs.animate.plan import AnimationRequest, plan_animation

    request = AnimationRequest(prompt="a fox", prompt_end="a (wolf:1.2.3)", mode="prompt-travel", frames=2,
                               width=64, height=64, steps=2)
    with pytest.raises(InputError, match=r"^prompt end weight '1\.2\.3'"):
        plan_animation(request, load_presets())


# What A1111's re_attention reads as text, not as a weight (modules/prompt_parser.py): kept literal here too.
@pytest.mark.parametrize("prompt, text", [
    ("(x:1e999)", "x:1e999"), ("(x:nan)", "x:nan"), ("(x:-inf)", "x:-inf"), ("(x:abc)", "x:abc"),
    ("(x:1e5)", "x:1e5"), ("(x:)", "x:"), ("(x:1,2)", "x:1,2"),
])
def test_non_numeric_weights_stay_literal_text_as_in_a1111(prompt, text):
    assert parse_attention(prompt) == [(text, pytest.approx(1.1))]
    assert prepare(GenerationRequest(prompt=prompt, model="tiny-sdxl")).styled_prompt == prompt


def test_a1111_doc_examples_parse_the_same():
    # The examples of A1111's parse_prompt_attention docstring, with its outputs.
    examples = {
        "normal text": [("normal text", 1.0)],
        "an (important) word": [("an ", 1.0), ("important", 1.1), (" word", 1.0)],
        "(unbalanced": [("unbalanced", 1.1)],
        r"\(literal\]": [("(literal]", 1.0)],
        "(unnecessary)(parens)": [("unnecessaryparens", 1.1)],
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).": [
            ("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
            (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)],
    }
    for prompt, expected in examples.items():
        assert parse_attention(prompt) == expected  # exact floats: the same multiplications in the same order


_WEIGHT = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
_PROMPTS = st.lists(st.sampled_from(list("()[]:\\.+-19ab ,") + ["BREAK", " BREAK ", "(x:", "1.2.3", "e9", "nan", "9" * 320]),
                    max_size=30).map("".join)


@settings(max_examples=100, deadline=None)
@given(prompt=_PROMPTS)
def test_random_prompts_parse_or_raise_one_input_error_line(prompt):
    try:
        fragments = parse_attention(prompt)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and f"accepted: {WEIGHT_ACCEPTED}" in message
        assert _WEIGHT.search(prompt), prompt  # only a `:weight)` group is ever refused
        return
    text = "".join(part for part, _weight in fragments)
    assert all(text.count(letter) == prompt.count(letter) for letter in "ab")  # only syntax is consumed
    assert all(isinstance(weight, float) and abs(weight) < float("inf") for _part, weight in fragments)


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text(alphabet="abc ,", min_size=1, max_size=5), min_size=1, max_size=4),
       weights=st.lists(st.floats(min_value=-10, max_value=10, allow_nan=False).map(lambda w: f"{w:.3f}"),
                        min_size=4, max_size=4))
def test_well_formed_weights_are_never_refused(words, weights):
    prompt = " ".join(f"({word}:{weight})" for word, weight in zip(words, weights, strict=False))
    parsed = parse_attention(prompt)
    assert all(abs(weight) <= 10 for _part, weight in parsed)


def test_cli_refuses_before_any_work_exit_2_one_line_nothing_written(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "a (fox:1.2.3)", "--model", "tiny-sdxl",
                           "--steps", "2", "--width", "64", "--height", "64", "--out", str(out)],
                          capture_output=True, text=True, env=python_env(), timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == ["sdxl-nb generate: error: prompt weight '1.2.3' in '(fox:1.2.3)' is "
                                                f"not a number; accepted: {WEIGHT_ACCEPTED}"]
    assert not out.exists()


def test_api_refuses_before_any_work_nothing_written(tmp_path):
    from sdxl_nb.api import generate

    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"prompt weight '\.'"):
        generate(prompt="(x:.)", model="tiny-sdxl", width=64, height=64, steps=2, out_dir=out)
    assert not out.exists()
