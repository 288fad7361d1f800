"""Scoring a folder: scores.jsonl lines keyed by image, scorer and weights; re-scoring skips; load_jobs columns."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from tests.conftest import PYTHON, SMALL, python_env


def _lines(folder):
    return [json.loads(line) for line in (folder / "scores.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def swept(engine, tmp_path_factory):
    """A 2 cfg x 2 seed sweep of tiny-sdxl, not yet scored."""
    from sdxl_nb.jobs.sweep import axis, run_sweep
    from sdxl_nb.request.resolve import GenerationRequest

    folder = tmp_path_factory.mktemp("swept")
    request = GenerationRequest(prompt="a (red:1.2) lighthouse BREAK at dusk", model="tiny-sdxl",
                                seed=1, **SMALL)
    assert run_sweep(request, x=axis("cfg", [3, 7]), y=axis("seed", [1, 2]), out_dir=folder, engine=engine).status == "ok"
    return folder


@pytest.fixture(scope="module")
def scored(swept):
    from sdxl_nb.analysis.scoring import score

    first = score(swept, ["clip", "aesthetic"], model="tiny-clip", batch_size=3, progress=False)
    return swept, first


def test_every_image_gets_one_line_per_scorer_keyed_by_its_bytes_and_weights(scored):
    from sdxl_nb.analysis import load_jobs
    from sdxl_nb.config.tiny_clip import tiny_aesthetic_file, tiny_clip_dir

    folder, first = scored
    assert (first.written, first.skipped, first.missing) == (8, 0, 0)
    lines = _lines(folder)
    images = load_jobs(folder).dropna(subset=["image_path"])
    shas = {hashlib.sha256(open(path, "rb").read()).hexdigest() for path in images["image_path"]}
    assert len(shas) == 4 and {line["image_sha256"] for line in lines} == shas
    clip_hash = hashlib.sha256((tiny_clip_dir() / "model.safetensors").read_bytes()).hexdigest()
    mlp_hash = hashlib.sha256(tiny_aesthetic_file().read_bytes()).hexdigest()
    assert {line["weights"] for line in lines if line["scorer"] == "clip"} == {clip_hash}
    assert {line["weights"] for line in lines if line["scorer"] == "aesthetic"} == {
        hashlib.sha256(f"{clip_hash}:{mlp_hash}".encode()).hexdigest()}
    assert len({(line["image_sha256"], line["scorer"], line["weights"]) for line in lines}) == 8
    assert "scores" not in (folder / "jobs.log").read_text(encoding="utf-8")


def test_rescoring_skips_what_is_scored_and_scores_only_new_images(scored, engine):
    from sdxl_nb.analysis.scoring import score
    from sdxl_nb.jobs.generate import generate

    folder, _first = scored
    before = (folder / "scores.jsonl").read_bytes()
    again = score(folder, ["clip", "aesthetic"], model="tiny-clip", progress=False)
    assert (again.written, again.skipped) == (0, 8)
    assert (folder / "scores.jsonl").read_bytes() == before
    generate(prompt="a boat", model="tiny-sdxl", seed=9, out_dir=folder, engine=engine, **SMALL)
    more = score(folder, ["clip"], model="tiny-clip", progress=False)
    assert (more.written, more.skipped) == (1, 4)
    assert (folder / "scores.jsonl").read_bytes().startswith(before)


def test_load_jobs_joins_scores_as_columns(scored):
    from sdxl_nb.analysis import load_jobs

    folder, _first = scored
    frame = load_jobs(folder)
    by_sha = {(line["image_sha256"], line["scorer"]): line["value"] for line in _lines(folder)}
    rows = frame.dropna(subset=["image_sha256"])
    for _, row in rows.iterrows():
        assert row["clip_score"] == pytest.approx(by_sha[(row["image_sha256"], "clip")])
        if (row["image_sha256"], "aesthetic") in by_sha:
            assert row["aesthetic_score"] == pytest.approx(by_sha[(row["image_sha256"], "aesthetic")])
    assert frame.loc[frame["mode"].astype(str) == "sweep", "clip_score"].isna().all()  # the grid job: no image


def test_a_folder_without_scores_has_no_score_columns(swept, tmp_path):
    import shutil

    from sdxl_nb.analysis import load_jobs

    shutil.copy(swept / "jobs.log", tmp_path / "jobs.log")
    assert not [column for column in load_jobs(tmp_path).columns if column.endswith("_score")]


def test_clip_score_is_100_times_the_cosine_of_clip_s_own_embeddings(scored):
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    from sdxl_nb.analysis import load_jobs
    from sdxl_nb.config.tiny_clip import ensure_tiny_clip

    folder, _first = scored
    row = load_jobs(folder).dropna(subset=["clip_score"]).iloc[0]
    model, processor = CLIPModel.from_pretrained(ensure_tiny_clip()), CLIPProcessor.from_pretrained(ensure_tiny_clip())
    with torch.no_grad():
        out = model(**processor(text=["a red lighthouse at dusk"], images=[Image.open(row["image_path"])],
                                return_tensors="pt", padding=True))
    cosine = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds).item()
    assert row["clip_score"] == pytest.approx(max(100 * cosine, 0), abs=1e-3)


def test_the_clip_prompt_is_the_words_clip_reads():
    from sdxl_nb.analysis.scoring import clip_prompt

    assert clip_prompt({"prompt": "a ((red:1.3)) cat BREAK on [a] mat <lora:x:0.5>"}) == "a red cat on a mat"
    assert clip_prompt({"prompt": "x", "styled_prompt": "x, oil painting"}) == "x, oil painting"
    assert clip_prompt({"prompt": "x", "frame_prompt": "frame words"}) == "frame words"


def test_aesthetic_weights_in_another_layout_or_holding_code_are_refused(tmp_path):
    import pickle

    import torch
    from safetensors.torch import save_file

    from sdxl_nb.analysis.scorers import aesthetic_mlp
    from sdxl_nb.config.tiny_clip import EMBED_DIM, aesthetic_state
    from sdxl_nb.errors import InputError

    wrong = tmp_path / "wrong.safetensors"
    save_file({"fc.weight": torch.zeros(1, EMBED_DIM)}, str(wrong))
    with pytest.raises(InputError, match="not an improved-aesthetic-predictor MLP"):
        aesthetic_mlp(wrong, EMBED_DIM)
    good = tmp_path / "good.pth"
    torch.save(aesthetic_state(EMBED_DIM, 1), good)
    with pytest.raises(InputError, match="expected input 768"):
        aesthetic_mlp(good, 768)
    assert aesthetic_mlp(good, EMBED_DIM)(torch.zeros(2, EMBED_DIM)).shape == (2, 1)
    hostile = tmp_path / "hostile.pth"
    with open(hostile, "wb") as handle:
        pickle.dump({"layers.0.weight": print}, handle)
    with pytest.raises(InputError):
        aesthetic_mlp(hostile, EMBED_DIM)


@pytest.mark.parametrize("args, message", [
    (["{empty}"], "without a jobs.log"),
    (["{swept}", "--scorer", "sharpness"], "unknown scorer 'sharpness'"),
    (["{swept}", "--scorer", "aesthetic", "--model", "tiny-clip", "--aesthetic-model", "{empty}/none.pth"],
     "does not exist"),
    (["{swept}", "--scorer", "clip"], "not in the local Hugging Face cache"),
    (["{swept}", "--model", "{empty}"], "has no config.json"),
])
def test_bad_score_input_is_one_line_exit_2_and_writes_nothing(swept, tmp_path, capsys, args, message):
    from sdxl_nb.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    before = (swept / "scores.jsonl").read_bytes() if (swept / "scores.jsonl").exists() else None
    argv = ["score", *[arg.format(swept=swept, empty=empty) for arg in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    after = (swept / "scores.jsonl").read_bytes() if (swept / "scores.jsonl").exists() else None
    assert after == before


def test_scoring_modules_import_without_torch():
    modules = ["sdxl_nb.analysis", "sdxl_nb.analysis.scoring", "sdxl_nb.analysis.scorers", "sdxl_nb.analysis.sets",
               "sdxl_nb.analysis.paired", "sdxl_nb.analysis.exporting", "sdxl_nb.analysis.scores_file",
               "sdxl_nb.cli.score", "sdxl_nb.cli.export", "sdxl_nb.config.tiny_clip"]
    code = (f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'torchmetrics', 'datasets') "
            "if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_scored_folder_still_audits_intact(scored, capsys):
    from sdxl_nb.cli import main

    folder, _first = scored
    assert main(["audit", str(folder)]) == 0, capsys.readouterr().out
    assert main(["verify", "--out", str(folder)]) == 0


def test_the_default_clip_is_found_in_the_hugging_face_cache(swept, tmp_path, monkeypatch):
    """openai/clip-vit-large-patch14 laid out as the hub caches it (the tiny CLIP's files standing in for it)."""
    import shutil

    from sdxl_nb.analysis.scorers import CLIP_REPO, clip_source
    from sdxl_nb.analysis.scoring import score
    from sdxl_nb.config.tiny_clip import AESTHETIC_FILE, ensure_tiny_clip
    from sdxl_nb.errors import InputError
    from tests.hf_cache import add_to_cache

    files = tmp_path / "files"
    shutil.copytree(ensure_tiny_clip(), files, ignore=shutil.ignore_patterns(AESTHETIC_FILE))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = add_to_cache(tmp_path / "hub", CLIP_REPO, files)
    assert clip_source().folder == snapshot
    folder = tmp_path / "copy"
    shutil.copytree(swept, folder, ignore=shutil.ignore_patterns("scores.jsonl"))
    from sdxl_nb.analysis import load_jobs

    assert score(folder, ["clip"], progress=False).written == load_jobs(folder)["image_path"].notna().sum()
    assert {line["models"]["clip"] for line in _lines(folder)} == {CLIP_REPO}
    (snapshot / "tokenizer.json").unlink()
    (snapshot / "tokenizer_config.json").unlink()
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(InputError, match="openai/clip-vit-large-patch14"):
        clip_source()


def test_the_cli_scores_and_says_what_it_did(scored, capsys):
    from sdxl_nb.cli import main

    folder, _first = scored
    argv = ["score", str(folder), "--scorer", "clip", "--scorer", "aesthetic", "--model", "tiny-clip"]
    assert main(argv) == 0 and main(argv) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.endswith("already there") and second.startswith("0 score(s) written to ")


def test_the_tiny_twins_are_built_to_the_same_bytes(tmp_path):
    """Their sha256 is part of every tiny score's key: a rebuilt cache must not make old scores look foreign."""
    from sdxl_nb.config.tiny_clip import AESTHETIC_FILE, ensure_tiny_clip, tiny_clip_dir

    fresh = ensure_tiny_clip(tmp_path / "again")
    for name in ("model.safetensors", AESTHETIC_FILE, "tokenizer.json"):
        assert (fresh / name).read_bytes() == (ensure_tiny_clip() / name).read_bytes(), name
    assert ensure_tiny_clip() == tiny_clip_dir()
