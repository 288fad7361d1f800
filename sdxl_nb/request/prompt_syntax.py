"""A1111 prompt syntax: `(word:1.3)`, `(word)`, `[word]`, escapes, BREAK, `<lora:NAME:WEIGHT>` tags; no torch.

The rules are A1111's (modules/prompt_parser.py): `(x)` multiplies by 1.1, `[x]` divides by 1.1, `(x:w)`
multiplies by w, nesting multiplies, an unclosed bracket applies to the end of the prompt, `\\(` `\\)` `\\[`
`\\]` `\\\\` are literal, and the word BREAK ends the current 75-token chunk. Extra-network tags are taken
out of the text first, as A1111 does before parsing. One difference: a weight A1111 would crash on is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sdxl_nb.errors import InputError

BREAK = "BREAK"
ROUND, SQUARE = 1.1, 1 / 1.1
# One token of the syntax: escapes, brackets, a `:weight)` closing, plain text, or a lone colon. This is A1111's
# re_attention (modules/prompt_parser.py), token for token, so the same text splits the same way: a weight is
# only ever digits and dots with an optional sign, so `(x:abc)`, `(x:1e5)`, `(x:nan)` or `(x:inf)` never match
# as a weight and stay literal text (`x:abc` at 1.1), as in A1111. What does match but is no number (`(x:.)`,
# `(x:1.2.3)`) makes A1111's float() fail; here it is refused as bad input, like a weight too large to be
# finite (400 digits, or nested weights whose product overflows).
_ATTENTION = re.compile(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
WEIGHT_ACCEPTED = "a finite number after the colon, as in (text:1.2)"
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
# A1111's extra networks: <kind:args>; args are split on ':'.
_TAG = re.compile(r"<(\w+):([^>]+)>")
# Brackets open at once (unclosed ones included). A1111 has no limit, and its parser's work grows with the square
# of the nesting ("(a" repeated 20000 times); no real prompt has more than a handful open.
MAX_NESTING = 64


@dataclass(frozen=True)
class LoraTag:
    name: str
    weight: float
    text: str  # the tag as written


def parse_attention(text: str, label: str = "prompt") -> list[tuple[str, float]]:
    """(text, weight) fragments in order; BREAK comes as ("BREAK", -1.0); equal neighbours are merged. A weight that
    is no finite number raises InputError naming it (`label`: which text, for the message), and so does nesting past
    MAX_NESTING open brackets.

    Fragments between two brackets are one run sharing one weight, so a closing bracket multiplies each run inside
    it once: the work is at most MAX_NESTING multiplications per bracket. Each weight is still 1.0 times each
    enclosing factor, innermost first, in A1111's order (re-runs compare pixels); a BREAK's is the same product
    negated, which is exact in floating point.
    """
    runs: list[list] = []  # [weight, [fragment text or None for BREAK, ...]] of each run, in order
    fresh = True  # the next fragment starts a new run (a bracket came since the last one)
    round_open: list[tuple[int, int]] = []  # (run index, text position) of each open "("
    square_open: list[int] = []

    def add(part: str | None) -> None:
        nonlocal fresh
        if fresh:
            runs.append([1.0, []])
            fresh = False
        runs[-1][1].append(part)

    def opened(position: int) -> int:
        nonlocal fresh
        if len(round_open) + len(square_open) >= MAX_NESTING:
            raise InputError(f"{label} has more than {MAX_NESTING} brackets open at once (at character {position}); "
                             f"accepted: at most {MAX_NESTING} ( or [ open at a time; write \\( or \\[ for a "
                             "literal bracket")
        fresh = True
        return len(runs)

    def multiply(start: int, factor: float) -> None:
        nonlocal fresh
        fresh = True
        for run in runs[start:]:
            run[0] *= factor

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            add(token[1:])
        elif token == "(":
            round_open.append((opened(match.start()), match.start()))
        elif token == "[":
            square_open.append(opened(match.start()))
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
                    add(None)
                add(part)
    for start, _position in round_open:
        multiply(start, ROUND)
    for start in square_open:
        multiply(start, SQUARE)
    overflow = next((run[1] for run in runs if not math.isfinite(run[0])), None)
    if overflow is not None:  # finite weights whose nesting multiplies past the float range
        first = BREAK if overflow[0] is None else overflow[0]
        raise InputError(f"{label} weights around {_shown(first)} multiply to an infinite weight; accepted: "
                         f"{WEIGHT_ACCEPTED}, nested to a finite product")
    result = [[BREAK, -weight] if part is None else [part, weight] for weight, parts in runs for part in parts]
    if not result:
        return [("", 1.0)]
    merged: list[list] = [result[0]]
    for fragment in result[1:]:
        if fragment[1] == merged[-1][1] and fragment[1] != -1.0:
            merged[-1][0] += fragment[0]
        else:
            merged.append(fragment)
    return [(fragment_text, float(fragment_weight)) for fragment_text, fragment_weight in merged]


def _shown(group: str) -> str:
    return repr(group if len(group) <= 60 else group[:28] + "..." + group[-28:])


def _weight(written: str, group: str, label: str) -> float:
    """The factor of a `(text:weight)` group; InputError before any work when it is no finite number (A1111's
    float() would fail, or hand CLIP an infinite weight)."""
    try:
        factor = float(written)
    except ValueError:
        raise InputError(f"{label} weight {_shown(written)} in {_shown(group)} is not a number; accepted: "
                         f"{WEIGHT_ACCEPTED}") from None
    if not math.isfinite(factor):
        raise InputError(f"{label} weight {_shown(written)} in {_shown(group)} is too large to be a finite number; "
                         f"accepted: {WEIGHT_ACCEPTED}")
    return factor


def lora_tags(text: str) -> list[LoraTag]:
    """Every `<lora:NAME>` / `<lora:NAME:WEIGHT>` tag; another extra-network kind is an InputError."""
    tags = []
    for match in _TAG.finditer(text):
        kind, args = match.group(1), match.group(2).split(":")
        if kind not in ("lora", "lyco"):
            raise InputError(f"prompt tag {match.group(0)!r} is not supported; accepted: <lora:NAME:WEIGHT>")
        name = args[0].strip()
        if not name or len(args) > 2:
            raise InputError(f"prompt tag {match.group(0)!r} is not understood; accepted: <lora:NAME:WEIGHT>")
        weight = 1.0
        if len(args) == 2:
            try:
                weight = float(args[1])
            except ValueError:
                raise InputError(f"prompt tag {match.group(0)!r}: weight {args[1]!r} is not a number") from None
        if weight != weight or abs(weight) == float("inf"):
            raise InputError(f"prompt tag {match.group(0)!r}: the weight must be a finite number")
        tags.append(LoraTag(name=name, weight=weight, text=match.group(0)))
    return tags


def without_tags(text: str) -> str:
    """The text sent to CLIP: extra-network tags removed (the text itself is untouched when it has none)."""
    return _TAG.sub("", text) if _TAG.search(text) else text


def fragments(text: str, label: str = "prompt") -> list[tuple[str, float]]:
    """What CLIP reads of a prompt: its tags removed, then the weighting syntax parsed."""
    return parse_attention(without_tags(text), label)


def plain_words(text: str) -> str:
    """The words of a prompt without its syntax (tags, weights, brackets, BREAK): what a CLIP score compares an
    image with."""
    words = "".join(" " if weight == -1.0 and part == BREAK else part for part, weight in fragments(text))
    return " ".join(words.split())


def check_weights(text: str, label: str) -> None:
    """InputError when a `(text:weight)` in `text` is no finite number: request validation calls this so a bad weight
    is refused before any model loads, not when the prompt is encoded."""
    fragments(text, label)


def is_plain(text: str) -> bool:
    """True when the prompt (its tags removed) has no weighting syntax: CLIP reads it exactly as written."""
    return fragments(text) == [(without_tags(text), 1.0)]


def weights_summary(text: str) -> list[list]:
    """The record's parsed weights: [fragment, weight] pairs whose weight is not 1 (BREAK as ["BREAK", null])."""
    return [[part, None if weight == -1.0 else round(weight, 6)] for part, weight in fragments(text)
            if weight != 1.0 and (part.strip() or weight == -1.0)]


def lora_tag(name: str, weight: float) -> str:
    """The A1111 tag for a LoRA at a weight (what the lab's picker inserts)."""
    return f"<lora:{name}:{weight:g}>"


def with_lora_tag(text: str, name: str, weight: float) -> str:
    """The prompt with the LoRA's tag at this weight: an existing tag of that LoRA is replaced, else one is appended."""
    tag = lora_tag(name, weight)
    for existing in lora_tags(text):
        if existing.name == name:
            return text.replace(existing.text, tag, 1)
    return f"{text.rstrip()} {tag}" if text.strip() else tag
