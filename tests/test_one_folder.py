"""Every kind of job in one output folder: `sdxl-nb audit`, `verify` and `audit --rerun all` all pass on it."""

from __future__ import annotations

import json
from collections import Counter

from PIL import Image

from sdxl_nb.cli import main
from sdxl_nb.record.joblog import read_records

SIZE = ["--width", "64", "--height", "64", "--steps", "2"]
SMALL = dict(width=64, height=64, steps=2)


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def make_every_kind_of_job(folder, inputs, capsys) -> None:
    """generate, img2img, inpaint, animate (seed-walk, slerp, prompt travel), a 2x1 sweep and a scenario batch;
    some through the CLI, some through the API, all on the kernel's engine (as `sdxl-nb audit` re-runs them)."""
    from sdxl_nb.jobs.animate import animate
    from sdxl_nb.jobs.generate import generate

    out = ["--out", str(folder)]
    code, text = cli(capsys, "generate", "--prompt", "a lighthouse", "--batch", "2", "--seed", "1", *SIZE, *out)
    assert code == 0, text
    first = read_records(folder / "jobs.log")[0]["images"][0]["path"]
    generate(prompt="the lighthouse, repainted", init_image=str(folder / first), strength=0.6, seed=2,
             out_dir=folder, steps=2)
    mask = inputs / "mask.png"
    image = Image.new("L", (64, 64), 0)
    image.paste(255, (16, 16, 48, 48))
    image.save(mask)
    code, text = cli(capsys, "generate", "--prompt", "a window in the lighthouse", "--init-image", str(folder / first),
                     "--mask", str(mask), "--strength", "0.8", "--seed", "3", "--steps", "2", *out)
    assert code == 0, text
    code, text = cli(capsys, "animate", "--prompt", "a lighthouse", "--frames", "3", "--seed", "4", *SIZE, *out)
    assert code == 0, text
    animate(prompt="a lighthouse", mode="slerp", frames=3, seed=5, seed_end=6, batch_size=2, out_dir=folder, **SMALL)
    animate(prompt="a lighthouse at dawn", prompt_end="a lighthouse in a storm", mode="prompt-travel", frames=3,
            seed=7, ping_pong=True, schedule="ease-in-out", out_dir=folder, **SMALL)
    code, text = cli(capsys, "sweep", "--prompt", "a lighthouse", "--x", "cfg=2,6", "--seed", "8", *SIZE, *out)
    assert code == 0, text
    scenarios = inputs / "scenarios.json"
    scenarios.write_text(json.dumps([{"name": "fox", "prompt": "a fox", "seed": 9, **SMALL},
                                     {"name": "owl", "prompt": "an owl", "negative": "blurry", "seed": 10, "batch": 2,
                                      **SMALL}]), encoding="utf-8")
    code, text = cli(capsys, "batch", str(scenarios), *out)
    assert code == 0, text


def test_every_kind_of_job_in_one_folder_passes_audit_verify_and_bit_exact_reruns(tmp_path, capsys):
    folder, inputs = tmp_path / "out", tmp_path / "out" / "inputs"  # a re-run reads images only inside the folder
    inputs.mkdir(parents=True)
    make_every_kind_of_job(folder, inputs, capsys)

    records = read_records(folder / "jobs.log")
    assert all(record["status"] == "ok" for record in records), [(r["mode"], r["error"]) for r in records]
    assert Counter(record["mode"] for record in records) == {"txt2img": 5, "img2img": 1, "inpaint": 1, "animate": 3,
                                                            "sweep": 1}
    assert {r["animation"]["mode"] for r in records if r["mode"] == "animate"} == {"seed-walk", "slerp",
                                                                                  "prompt-travel"}
    assert sorted(r["scenario"]["name"] for r in records if "scenario" in r) == ["fox", "owl"]

    code, text = cli(capsys, "audit", str(folder))
    assert code == 0, text
    assert "0 untracked file(s); 0 leftover temp file(s)" in text
    code, text = cli(capsys, "verify", "--out", str(folder))
    assert code == 0 and text.strip().endswith(": ok"), text
    code, text = cli(capsys, "audit", str(folder), "--rerun", "all", "--json")
    assert code == 0, text
    report = json.loads(text[text.index("{"):])
    reruns = report["reruns"]
    # Every saved image and frame was re-run (the sweep's own record names a grid, not an image).
    assert len(reruns) == sum(len(r["frames"] if r["mode"] == "animate" else r["images"]) for r in records)
    assert {row["verdict"] for row in reruns} == {"bit-exact"}
    assert {row["mode"] for row in reruns} == {"txt2img", "img2img", "inpaint", "animate"}
