"""A1111 prompt syntax and long prompts: the parser, the chunked weighted encoder, and their pixels in every mode."""

import numpy as np
import pytest
import torch
from PIL import Image

from sdxl_nb.analysis import read_logged_records
from sdxl_nb.audit import BIT_EXACT, rerun_jobs, select_for_rerun
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model
from sdxl_nb.request.prompt_syntax import is_plain, parse_attention, weights_summary, without_tags
from tests.conftest import SMALL, pixels

LONG = ", ".join(f"word{i}" for i in range(60))  # ~360 byte-level tokens: two of tiny-sdxl's 254-token chunks


@pytest.mark.parametrize("text, expected", [
    ("a fox", [("a fox", 1.0)]),
    ("(fox:1.5)", [("fox", 1.5)]),
    ("a (fox) [cat]", [("a ", 1.0), ("fox", 1.1), (" ", 1.0), ("cat", 1 / 1.1)]),
    ("((fox))", [("fox", 1.1 * 1.1)]),
    ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
    (r"\(literal\) \[x\]", [("(literal) [x]", 1.0)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("(unclosed", [("unclosed", 1.1)]),
    ("a: b, x:1.2)", [("a: b, x:1.2)", 1.0)]),  # a colon or weight outside brackets is text
    ("BREAKFAST", [("BREAKFAST", 1.0)]),
    ("", [("", 1.0)]),
])
def test_a1111_attention_syntax(text, expected):
    parsed = parse_attention(text)
    assert [part for part, _ in parsed] == [part for part, _ in expected]
    assert [weight for _, weight in parsed] == pytest.approx([weight for _, weight in expected])


def test_plain_prompts_and_lora_tags():
    assert is_plain("a fox in the snow") and is_plain("a fox <lora:x:0.5>")
    assert not is_plain("(fox:1.5)") and not is_plain("a BREAK b") and not is_plain(r"\(fox\)")
    assert without_tags("a fox") == "a fox" and without_tags("a <lora:x:0.5>fox") == "a fox"
    assert weights_summary("a (fox:1.5) BREAK b") == [["fox", 1.5], ["BREAK", None]]


@pytest.fixture(scope="module")
def pipe(engine):
    return engine.load(find_model("tiny-sdxl", load_presets())).pipe


def test_one_plain_chunk_is_bit_identical_to_diffusers_encode_prompt(pipe):
    from sdxl_nb.backends.local.conditioning import PromptEncoder

    encoder = PromptEncoder(pipe)
    for text, same in (("a red fox, in the snow", "a red fox, in the snow"), ("", ""),
                       ("a (red:1) fox", "a red fox")):  # weights of 1: the same numbers as plain text
        ours = encoder.encode(text)
        hidden, _negative, pooled, _ = pipe.encode_prompt(prompt=same, device="cpu", do_classifier_free_guidance=False)
        assert ours.chunks == 1 and torch.equal(ours.hidden, hidden) and torch.equal(ours.pooled, pooled)


def test_chunks_follow_a1111_rules(pipe):
    from sdxl_nb.backends.local.conditioning import PromptEncoder

    encoder = PromptEncoder(pipe)
    window = pipe.tokenizer.model_max_length - 2
    assert encoder.chunk_count("a fox") == 1 and encoder.chunk_count("a BREAK fox") == 2
    assert encoder.chunk_count(LONG) == 2 and encoder.token_count(LONG) > window
    chunks = encoder.chunks(LONG, 0)
    comma = pipe.tokenizer.convert_tokens_to_ids(",</w>")
    # A full chunk gives the words after its last comma to the next chunk (A1111's comma backtrack).
    first = [token for token in chunks[0].tokens if token != pipe.tokenizer.eos_token_id]
    assert first[-1] == comma and len(first) < window
    encoded = encoder.encode(LONG)
    assert encoded.hidden.shape[1] == 2 * pipe.tokenizer.model_max_length
    assert encoder.encode("a fox", chunks=3).hidden.shape[1] == 3 * pipe.tokenizer.model_max_length
    weighted = encoder.encode("a (fox:1.5)").hidden
    assert not torch.equal(weighted, encoder.encode("a fox").hidden)
    # A1111 keeps each chunk's mean after weighting.
    assert torch.isclose(weighted[..., :32].mean(), encoder.encode("a fox").hidden[..., :32].mean(), atol=1e-6)


def test_weighting_changes_pixels_and_weight_one_does_not(run, tmp_path):
    plain = run(prompt="a fox", out_dir=tmp_path / "plain")
    assert plain.record["conditioning"]["sent_as"] == "text"
    weighted = run(prompt="a (fox:1.5)", out_dir=tmp_path / "weighted")
    one = run(prompt="a (fox:1)", out_dir=tmp_path / "one")
    assert weighted.record["conditioning"]["sent_as"] == "embeddings"
    assert weighted.record["conditioning"]["prompt"]["weights"] == [["fox", 1.5]]
    assert not np.array_equal(pixels(plain.images[0]), pixels(weighted.images[0]))
    assert np.array_equal(pixels(plain.images[0]), pixels(one.images[0]))  # weights of 1: the same embeddings


def test_a_long_prompt_is_read_whole_and_differs_from_its_first_chunk(run, pipe, tmp_path):
    from sdxl_nb.backends.local.conditioning import PromptEncoder

    first_chunk = pipe.tokenizer.decode(PromptEncoder(pipe).chunks(LONG, 0)[0].tokens, skip_special_tokens=True)
    long = run(prompt=LONG, out_dir=tmp_path / "long")
    prefix = run(prompt=first_chunk, out_dir=tmp_path / "prefix")
    conditioning = long.record["conditioning"]
    assert conditioning["prompt"]["chunks"] == 2 and conditioning["padded_to"] == 2
    assert prefix.record["conditioning"]["prompt"]["chunks"] == 1
    assert not any("CLIP reads" in warning for warning in long.record["warnings"])  # no cut-off any more
    assert not np.array_equal(pixels(long.images[0]), pixels(prefix.images[0]))


def test_weighted_negative_and_break(run, tmp_path):
    base = run(prompt="a fox", negative_prompt="blurry", out_dir=tmp_path / "a")
    weighted = run(prompt="a fox", negative_prompt="(blurry:1.4)", out_dir=tmp_path / "b")
    broken = run(prompt="a BREAK fox", out_dir=tmp_path / "c")
    assert weighted.record["conditioning"]["negative_prompt"]["weights"] == [["blurry", 1.4]]
    assert broken.record["conditioning"]["prompt"]["chunks"] == 2
    assert not np.array_equal(pixels(base.images[0]), pixels(weighted.images[0]))


def test_weighting_in_img2img_and_inpaint(run, tmp_path):
    init, mask = tmp_path / "init.png", tmp_path / "mask.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(init)
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(mask)
    for extra in ({"init_image": str(init)}, {"init_image": str(init), "mask_image": str(mask)}):
        plain = run(prompt="a fox", out_dir=tmp_path / "p", **extra)
        weighted = run(prompt=f"a (fox:1.6), {LONG}", out_dir=tmp_path / "w", **extra)
        assert weighted.record["conditioning"]["prompt"]["chunks"] == 2
        assert not np.array_equal(pixels(plain.images[0]), pixels(weighted.images[0]))


def test_prompt_travel_interpolates_weighted_embeddings(engine, run, tmp_path):
    from sdxl_nb.jobs.animate import animate

    result = animate(prompt="a (fox:1.4)", prompt_end=f"a lighthouse, {LONG}", mode="prompt-travel", frames=3,
                     out_dir=tmp_path / "anim", engine=engine, **SMALL, seed=1)
    assert result.record["conditioning"]["prompt_end"]["chunks"] == 2
    assert result.record["conditioning"]["padded_to"] == 2
    # Both ends are padded to the run's two chunks, so frame 0 is the weighted prompt at that length.
    assert not np.array_equal(pixels(result.frames[0]), pixels(result.frames[-1]))
    records, _ = read_logged_records(tmp_path / "anim")
    assert rerun_jobs(select_for_rerun(records, "all"), engine)["verdict"].tolist() == [BIT_EXACT] * 3


def test_sweep_over_weighted_prompts(engine, tmp_path):
    from sdxl_nb.jobs.sweep import axis, run_sweep
    from sdxl_nb.request.resolve import GenerationRequest

    result = run_sweep(GenerationRequest(prompt="x", seed=3, **SMALL), x=axis("prompt", ["a fox", "a (fox:1.5)"]),
                       out_dir=tmp_path, engine=engine)
    cells = [result.results[key] for key in ((0, 0), (1, 0))]
    assert [cell.record["conditioning"]["sent_as"] for cell in cells] == ["text", "embeddings"]
    assert not np.array_equal(pixels(cells[0].images[0]), pixels(cells[1].images[0]))


def test_weighted_and_long_jobs_and_old_records_rerun_bit_exact(run, engine, tmp_path):
    import json

    run(prompt="a (fox:1.3) [snow]", batch=2, out_dir=tmp_path)
    run(prompt=LONG, negative_prompt="(blurry:1.2)", out_dir=tmp_path)
    plain = run(prompt="a fox", out_dir=tmp_path)
    # A record written before this version has no conditioning, loras or embeddings: it re-runs as it did.
    log = tmp_path / "jobs.log"
    lines = log.read_text(encoding="utf-8").splitlines()
    old = json.loads(lines[-1])
    for key in ("conditioning", "loras", "embeddings"):
        old.pop(key)
    log.write_text("\n".join(lines[:-1] + [json.dumps(old)]) + "\n", encoding="utf-8")
    assert plain.record["conditioning"]["sent_as"] == "text"
    records, _ = read_logged_records(tmp_path)
    table = rerun_jobs(select_for_rerun(records, "all"), engine)
    assert table["verdict"].tolist() == [BIT_EXACT] * 4, table["note"].tolist()  # one row per image
