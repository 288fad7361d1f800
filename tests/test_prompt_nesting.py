"""The prompt parser is bounded: nesting past MAX_NESTING open brackets is one InputError line, found fast; every
prompt within the bound parses exactly as before (the same fragments and bit-identical weights)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdxl_nb.errors import InputError
from sdxl_nb.request.prompt_syntax import (  # noqa: I001 (the reference parser)
    _ATTENTION,
    _BREAK,
    BREAK,
    MAX_NESTING,
    ROUND,
    SQUARE,
    WEIGHT_ACCEPTED,
    _shown,
    _weight,
    parse_attention,
)
from tests.hostile import time_bound

TOKENS = ["(", ")", "[", "]", "a", "b c", ", ", ":", ":1.5)", ":0.3)", ":-2)", ": 1.21 )", "\\(", "\\", "BREAK",
          " BREAK ", "x BREAK y", "((", "))", ":.)", ":1e400"]


@pytest.mark.parametrize("text", ["(a" * 20000, "[" * 100_000, "(" * 65 + "x", "([" * 40 + "x"])
def test_deep_nesting_is_one_line_and_fast(text):
    with time_bound(10), pytest.raises(InputError) as error:
        parse_attention(text)
    message = str(error.value)
    assert "\n" not in message and f"more than {MAX_NESTING} brackets open at once" in message


def test_nesting_up_to_the_bound_parses_and_many_brackets_stay_linear():
    deepest = parse_attention("(" * MAX_NESTING + "x")
    assert deepest == reference_parse("(" * MAX_NESTING + "x")
    with time_bound(20):
        parse_attention("((a)) [b] (c:1.2) " * 20000)
        parse_attention("(" * (MAX_NESTING - 1) + "a:" * 20000)


def outcome(parse, text):
    try:
        return parse(text)
    except InputError as exc:
        return ("refused", str(exc))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=30))  # at most 60 brackets open: within the bound
def test_valid_prompts_parse_exactly_as_before(tokens):
    text = "".join(tokens)
    new, old = outcome(parse_attention, text), outcome(reference_parse, text)
    assert new == old
    if isinstance(new, list):  # weights compared as bits: the order of the multiplications is unchanged
        assert [math.copysign(1, w) for _, w in new] == [math.copysign(1, w) for _, w in old]


def reference_parse(text: str, label: str = "prompt") -> list[tuple[str, float]]:
    """The parser as it was before runs and the nesting bound (A1111's algorithm, quadratic in the nesting)."""
    result: list[list] = []
    round_open: list[tuple[int, int]] = []  # (fragment index, text position) of each open "("
    square_open: list[int] = []

    def multiply(start: int, factor: float) -> None:
        for fragment in result[start:]:
            fragment[1] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            result.append([token[1:], 1.0])
        elif token == "(":
            round_open.append((len(result), match.start()))
        elif token == "[":
            square_open.append(len(result))
        elif weight is not None and round_open:
            start, position = round_open.pop()
            multiply(start, _weight(weight, text[position:match.end()], label))
        elif token == ")" and round_open:
            multiply(round_open.pop()[0], ROUND)
        elif token == "]" and square_open:
            multiply(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(token)):
                if i > 0:
                    result.append([BREAK, -1.0])
                result.append([part, 1.0])
    for start, _position in round_open:
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, SQUARE)
    overflow = next((part for part, weight in result if not math.isfinite(weight)), None)
    if overflow is not None:  # finite weights whose nesting multiplies past the float range
        raise InputError(f"{label} weights around {_shown(overflow)} multiply to an infinite weight; accepted: "
                         f"{WEIGHT_ACCEPTED}, nested to a finite product")
    if not result:
        return [("", 1.0)]
    merged: list[list] = [result[0]]
    for fragment in result[1:]:
        if fragment[1] == merged[-1][1] and fragment[1] != -1.0:
            merged[-1][0] += fragment[0]
        else:
            merged.append(fragment)
    return [(fragment_text, float(fragment_weight)) for fragment_text, fragment_weight in merged]
