"""A secret typed into an animate, sweep or batch prompt reaches no file name, PNG chunk, log line or job marker."""

from __future__ import annotations

import json
import re

from PIL import Image

from sdxl_nb.record.joblog import read_records
from sdxl_nb.record.recovery import MARKER_PREFIX
from tests.conftest import SMALL

SECRET = "hf_SeCrEt0123456789AbCdEfGhIjKlMn"
MASKED = "<HF_TOKEN masked>"
WINDOW = 10  # a file name must not hold even a slice of the secret this long (a slug cuts long prompts)


def squashed(text: str) -> str:
    """Lowercase letters and digits only: how a prompt survives slugging into a file name."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def secret_slices() -> set[str]:
    plain = squashed(SECRET)
    return {plain[i:i + WINDOW] for i in range(len(plain) - WINDOW + 1)}


class MarkerSnapshots:
    """on_progress hook: copies every running job's marker (its journal) while the job runs."""

    def __init__(self, folder):
        self.folder, self.seen = folder, {}

    def __call__(self, _progress: dict) -> None:
        for marker in self.folder.glob(f"{MARKER_PREFIX}*"):
            try:
                self.seen[marker.name] = marker.read_bytes()
            except FileNotFoundError:
                pass  # its job just finished


def run_jobs_with_the_secret(folder, tmp_path, engine, markers, capsys):
    from sdxl_nb.cli import main
    from sdxl_nb.jobs.animate import animate
    from sdxl_nb.jobs.batch import run_batch
    from sdxl_nb.jobs.sweep import axis, run_sweep
    from sdxl_nb.request.resolve import GenerationRequest

    animate(prompt=f"a lighthouse {SECRET} at dusk", mode="seed-walk", frames=2, seed=1, batch_size=1,
            out_dir=folder, engine=engine, on_progress=markers, **SMALL)
    animate(prompt="a lighthouse at dawn", prompt_end=f"a storm over {SECRET}", negative_prompt=f"no {SECRET}",
            mode="prompt-travel", frames=2, seed=2, out_dir=folder, engine=engine, on_progress=markers, **SMALL)
    run_sweep(GenerationRequest(prompt="unused", negative_prompt=f"blurry {SECRET}", seed=3, **SMALL),
              x=axis("prompt", [f"a fox {SECRET}", "an owl"]), out_dir=folder, engine=engine, on_progress=markers)
    run_batch([{"name": "secret", "prompt": f"a heron {SECRET}", "negative": f"no {SECRET}", "seed": 4, **SMALL}],
              batch_id="secrets", out_dir=folder, engine=engine, on_progress=markers)
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text(json.dumps([{"name": "cli", "prompt": f"a crane {SECRET}", "seed": 5, **SMALL}]),
                         encoding="utf-8")
    size = ["--width", "64", "--height", "64", "--steps", "2"]
    commands = [["batch", str(scenarios), "--out", str(folder)],
                ["animate", "--prompt", f"{SECRET} walking", "--frames", "2", "--seed", "6", *size, "--out", str(folder)],
                ["sweep", "--x", f'prompt=["{SECRET} a", "{SECRET} b"]', "--seed", "7", *size, "--out", str(folder)]]
    for argv in commands:
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert SECRET not in captured.out + captured.err, argv


def test_a_secret_in_animate_sweep_and_batch_prompts_is_written_nowhere(engine, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    folder = tmp_path / "out"
    markers = MarkerSnapshots(folder)
    run_jobs_with_the_secret(folder, tmp_path, engine, markers, capsys)

    records = read_records(folder / "jobs.log")
    modes = [record["mode"] for record in records]
    assert modes.count("animate") == 3 and modes.count("sweep") == 2 and len(records) == 11
    assert all(record["status"] == "ok" for record in records)
    log_text = (folder / "jobs.log").read_text(encoding="utf-8")
    assert SECRET not in log_text and MASKED in log_text  # the prompts were recorded, masked
    events = (folder / "logs" / "app_events.log").read_text(encoding="utf-8")
    assert SECRET not in events and f"PROMPT: a heron {MASKED}" in events
    assert markers.seen and all(SECRET.encode() not in data for data in markers.seen.values())
    assert any(MASKED.encode() in data for data in markers.seen.values())

    files = [path for path in folder.rglob("*") if path.is_file()]
    kinds = {path.suffix for path in files}
    assert {".png", ".gif", ".webp"} <= kinds
    slices = secret_slices()
    for path in files:
        name = squashed(str(path.relative_to(folder)))
        assert not any(piece in name for piece in slices), path
        data = path.read_bytes()
        assert SECRET.encode() not in data and SECRET.encode("utf-16-le") not in data, path
        if path.suffix == ".png":
            with Image.open(path) as image:
                chunks = dict(image.text)
            assert chunks or path.stem.endswith("_grid"), path  # every image and frame carries its metadata
            for key, value in chunks.items():
                assert SECRET not in key and SECRET not in value, (path, key)
    frames = [json.loads(Image.open(folder / f["path"]).text["sdxl_nb"]) for r in records if r["mode"] == "animate"
              for f in r["frames"]]
    assert any(MASKED in (frame["image"].get("styled_prompt_end") or "") for frame in frames)
