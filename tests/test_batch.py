"""Scenario batches: validation before any work, failures recorded while the batch goes on, resume from jobs.log."""

import json
import threading

import pytest
from PIL import Image

from sdxl_nb.backends.local.placement import ProcessPlacement
from sdxl_nb.cli import main
from sdxl_nb.errors import GenerationError, InputError
from sdxl_nb.jobs.batch import load_scenarios, parse_scenarios, run_batch
from sdxl_nb.record.joblog import read_records

SMALL = {"width": 64, "height": 64, "steps": 2}


def scenarios_file(tmp_path, entries, name="scenarios_demo.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def entries():
    return [{"name": "fox", "prompt": "a red fox", "seed": 1, **SMALL},
            {"name": "boom", "prompt": "this one fails", "negative": "fog", "seed": 2, **SMALL},
            {"name": "owl", "prompt": "an owl", "seed": 3, "batch": 2, "style": "Cinematic", **SMALL}]


@pytest.fixture
def flaky(engine, monkeypatch):
    """The engine fails (like an out-of-memory) on any prompt containing 'fails' while `broken` is set."""
    state = {"broken": True}
    real_run = engine.run

    def run(plan, loaded, hooks=None):
        if state["broken"] and "fails" in plan.request.prompt:
            raise GenerationError("out of memory on cpu (simulated)")
        return real_run(plan, loaded, hooks)

    monkeypatch.setattr(engine, "run", run)
    return state


@pytest.mark.parametrize("data, message", [
    ({"not": "a list"}, "expected a non-empty JSON list of scenarios"),
    ([], "expected a non-empty JSON list"),
    (["text"], "scenario #1 is str, expected an object"),
    ([{"prompt": "x"}], 'scenario #1 needs a non-empty text "name"'),
    ([{"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"}], "scenario 'a' appears twice"),
    ([{"name": "a", "prompt": "x", "sampler": "Euler"}], "unknown key(s) sampler; accepted: name, negative, prompt"),
    ([{"name": "a"}], 'scenario \'a\' needs a "prompt"'),
    ([{"name": "a", "prompt": "x", "negative": "n", "negative_prompt": "m"}], "gives both negative and negative_prompt"),
])
def test_bad_scenario_lists_are_one_clear_line(data, message):
    with pytest.raises(InputError) as error:
        parse_scenarios(data, "s.json")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_scenario_fields_become_requests(tmp_path):
    Image.new("RGB", (64, 64)).save(tmp_path / "init.png")
    path = scenarios_file(tmp_path, [{"name": "a", "prompt": "x", "negative": "fog", "init_image": "init.png",
                                      "strength": 0.5, "seed": 4}])
    (scenario,) = load_scenarios(path)
    assert scenario.request.negative_prompt == "fog" and scenario.request.seed == 4
    assert scenario.request.init_image == str(tmp_path / "init.png")  # relative to the scenarios file


def test_batch_records_failures_goes_on_and_resumes(engine, flaky, tmp_path):
    path = scenarios_file(tmp_path, entries())
    out = tmp_path / "out"
    seen = []
    summary = run_batch(path, out_dir=out, engine=engine, on_scenario=lambda o, n, t: seen.append((o.name, n, t)))
    assert [(o.name, o.status) for o in summary.outcomes] == [("fox", "ok"), ("boom", "failed"), ("owl", "ok")]
    assert summary.outcomes[1].error == "out of memory on cpu (simulated)" and not summary.ok
    assert seen == [("fox", 1, 3), ("boom", 2, 3), ("owl", 3, 3)]
    records = read_records(out / "jobs.log")
    assert [(r["scenario"]["name"], r["status"]) for r in records] == [("fox", "ok"), ("boom", "failed"), ("owl", "ok")]
    assert all(r["scenario"]["batch_id"] == "scenarios_demo" for r in records)
    assert records[1]["negative_prompt"] == "fog" and records[2]["batch"] == 2 and records[2]["seeds"] == [3, 4]
    assert "failed: boom: out of memory" in "\n".join(summary.lines())

    # Re-run: done scenarios are skipped, the failed one runs again (and now works).
    flaky["broken"] = False
    again = run_batch(path, out_dir=out, engine=engine)
    assert [(o.name, o.status) for o in again.outcomes] == [("fox", "skipped"), ("boom", "ok"), ("owl", "skipped")]
    assert again.ok and len(read_records(out / "jobs.log")) == 4
    assert run_batch(path, out_dir=out, engine=engine).count("skipped") == 3

    # An edited scenario is not the one that ran: it runs again.
    edited = entries()
    edited[0]["prompt"] = "a red fox at night"
    scenarios_file(tmp_path, edited)
    third = run_batch(path, out_dir=out, engine=engine)
    assert [o.status for o in third.outcomes] == ["ok", "skipped", "skipped"]


def test_a_bad_scenario_stops_the_batch_before_anything_is_written(engine, tmp_path):
    bad = entries()
    bad[2]["steps"] = 0
    out = tmp_path / "out"
    with pytest.raises(InputError, match="scenario 'owl': steps 0 is out of range"):
        run_batch(scenarios_file(tmp_path, bad), out_dir=out, engine=engine)
    assert not out.exists()


def test_stop_leaves_the_rest_not_run(engine, tmp_path):
    started = []
    summary = run_batch(entries(), batch_id="stop", out_dir=tmp_path, engine=engine,
                        on_start=lambda s: started.append(s.name), should_stop=lambda: len(started) >= 1)
    assert [o.status for o in summary.outcomes] == ["interrupted", "not run", "not run"]
    assert started == ["fox"]
    with pytest.raises(InputError, match="give batch_id"):
        run_batch(entries(), out_dir=tmp_path, engine=engine)


class ThreadRanks:
    """Two ranks in threads with accelerate's semantics: a barrier, contiguous shares, gather in rank order."""

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.gathered: dict[int, list] = {}

    def rank(self, rank: int):
        group = self

        class Ranked:
            placement = ProcessPlacement(rank=rank, world_size=group.world_size, device="cpu")
            is_main = rank == 0

            def wait(self):
                group.barrier.wait()

            def split(self, items):
                size, extra = divmod(len(items), group.world_size)
                start = rank * size + min(rank, extra)
                return list(items)[start:start + size + (1 if rank < extra else 0)]

            def gather(self, items):
                group.gathered[rank] = list(items)
                group.barrier.wait()
                return [item for r in sorted(group.gathered) for item in group.gathered[r]]

        return Ranked()


def test_processes_split_the_pending_scenarios_each_runs_once(engine, tmp_path):
    scenes = [{"name": f"s{i}", "prompt": f"scene {i}", "seed": i, **SMALL} for i in range(5)]
    (tmp_path / "out").mkdir()
    run_batch(scenes[:1], batch_id="split", out_dir=tmp_path / "out", engine=engine)  # s0 done before
    ranks, results = ThreadRanks(2), {}

    def worker(rank):
        results[rank] = run_batch(scenes, batch_id="split", out_dir=tmp_path / "out", engine=engine,
                                  processes=ranks.rank(rank))

    threads = [threading.Thread(target=worker, args=(r,)) for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    records = read_records(tmp_path / "out" / "jobs.log")[1:]
    assert sorted(r["scenario"]["name"] for r in records) == ["s1", "s2", "s3", "s4"]
    assert {r["scenario"]["name"]: r["distributed"]["rank"] for r in records} == {"s1": 0, "s2": 0, "s3": 1, "s4": 1}
    assert all(r["distributed"]["world_size"] == 2 for r in records)
    for summary in results.values():  # every rank ends with the whole batch's summary
        assert [(o.name, o.status) for o in summary.outcomes] == [("s0", "skipped")] + [(f"s{i}", "ok")
                                                                                       for i in range(1, 5)]


def test_cli_batch_bad_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "a", "prompt": "x",}]', encoding="utf-8")
    out = tmp_path / "out"
    for path, message in ((bad, "not valid JSON (line 1, column 30"), (tmp_path / "none.json", "does not exist")):
        assert main(["batch", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["batch", str(bad), "--lambda-region", "us-east-1"]) == 2


@pytest.mark.slow
def test_cli_batch_runs_resumes_and_summarises(tmp_path):
    import subprocess

    from tests.conftest import PYTHON, python_env

    path = scenarios_file(tmp_path, [e for e in entries() if e["name"] != "boom"])
    out = tmp_path / "out"
    first = subprocess.run([PYTHON, "-m", "sdxl_nb", "batch", str(path), "--out", str(out)], capture_output=True,
                           text=True, env=python_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("batch scenarios_demo: 2 scenario(s): 2 ok in ")
    assert "[1/2] ok fox (1 image(s)" in first.stderr and "[2/2] ok owl (2 image(s)" in first.stderr
    dry = subprocess.run([PYTHON, "-m", "sdxl_nb", "batch", str(path), "--out", str(out), "--dry-run"],
                         capture_output=True, text=True, env=python_env(), timeout=300)
    assert dry.stdout.split("\n")[:2] == ["done\tfox", "done\towl"]
    assert len(read_records(out / "jobs.log")) == 2


def test_each_scenario_gets_its_own_scheduler_whatever_ran_before(engine, tmp_path):
    """A batch mixes schedulers; "Default" stays the model's own and configs do not leak between jobs."""
    scenes = [{"name": "karras", "prompt": "a", "seed": 1, "scheduler": "DPM++ 2M Karras", **SMALL},
              {"name": "default", "prompt": "b", "seed": 1, **SMALL},
              {"name": "euler", "prompt": "c", "seed": 1, "scheduler": "Euler", **SMALL}]
    run_batch(scenes, batch_id="schedulers", out_dir=tmp_path, engine=engine)
    records = {r["scenario"]["name"]: r["scheduler"] for r in read_records(tmp_path / "jobs.log")}
    assert records["karras"]["config"]["use_karras_sigmas"] is True
    assert records["default"]["class"] == "EulerDiscreteScheduler"
    assert records["default"]["config"].get("use_karras_sigmas") is not True
    assert records["euler"]["config"].get("use_karras_sigmas") is not True
