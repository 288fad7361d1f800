"""A refiner switch that leaves the base or the refiner no step is one line before any work, with switches that work."""

import subprocess
from types import SimpleNamespace

import pytest

from sdxl_nb.backends.local.refiner_split import split_problem, split_steps, switch_range
from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.tiny_refiner import TINY_REFINER_ID
from sdxl_nb.errors import InputError
from tests.conftest import PYTHON, SMALL, python_env

REFINER = TINY_REFINER_ID
SCHEDULERS = ["Default", "Euler a", "DPM++ 2M Karras", "DPM++ 2M SDE Karras", "UniPC", "DDIM", "Heun", "LMS"]


@pytest.fixture(scope="module")
def own_scheduler():
    from sdxl_nb.backends.local.loading import model_scheduler
    from sdxl_nb.config.tiny import ensure_tiny_model

    return model_scheduler(ensure_tiny_model())


def _scheduler(own, name):
    import diffusers

    preset = load_presets().schedulers[name]
    cls = type(own) if preset.cls is None else getattr(diffusers, preset.cls)
    return cls.from_config(own.config, **preset.kwargs)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("steps, strength", [(2, None), (3, None), (4, None), (7, None), (30, None), (6, 0.5),
                                             (10, 0.35)])
def test_the_advised_switches_are_the_exact_edges_of_the_split(own_scheduler, name, steps, strength):
    scheduler = _scheduler(own_scheduler, name)
    edges = switch_range(scheduler, steps, strength)
    assert edges is not None
    lowest, highest = edges
    assert lowest <= highest < 1
    assert min(split_steps(scheduler, steps, lowest, strength)) >= 1  # both models get a step at each edge
    assert min(split_steps(scheduler, steps, highest, strength)) >= 1
    assert split_steps(scheduler, steps, round(lowest - 0.001, 3), strength)[0] == 0 or lowest == 0.001
    assert split_steps(scheduler, steps, round(highest + 0.001, 3), strength)[1] == 0 or highest == 0.999


def test_a_single_step_cannot_be_split(own_scheduler):
    scheduler = _scheduler(own_scheduler, "Default")
    assert switch_range(scheduler, 1, None) is None
    r = SimpleNamespace(refiner=object(), refiner_switch=0.5, steps=1, strength=None,
                        scheduler=SimpleNamespace(name="Default"))
    problem = split_problem(scheduler, r)
    assert "no switch gives both models a step; accepted: more steps, or refiner switch 1" in problem


@pytest.mark.parametrize("switch, who, advice", [
    (1e-9, "the base model", "accepted: a switch from 0.249 (the lowest that gives the base a step) to 0.998"),
    (0.1, "the base model", "accepted: a switch from 0.249"),
    (0.999, "the refiner", "to 0.998 (the highest that gives the refiner a step) for 4 steps, or 1"),
])
def test_api_refuses_before_any_work_with_the_right_advice(run, tmp_path, switch, who, advice):
    out = tmp_path / "out"
    with pytest.raises(InputError) as info:
        run(prompt="a fox", steps=4, refiner=REFINER, refiner_switch=switch, out_dir=out)
    message = str(info.value)
    assert message.startswith(f"refiner switch {switch:g} leaves {who} no step of the 4-step schedule (Default)")
    assert advice in message and "\n" not in message and "lower switch" not in message
    assert not out.exists()


def test_the_edges_themselves_run(run, tmp_path):
    for switch in (0.249, 0.998):
        result = run(prompt="a fox", steps=4, refiner=REFINER, refiner_switch=switch, out_dir=tmp_path / str(switch))
        assert result.status == "ok" and not result.record["warnings"]
        assert any("base 1 step(s), refiner 3" in e or "base 3 step(s), refiner 1" in e for e in result.record["events"])


def test_cli_refuses_exit_2_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # a folder that exists: it gets no jobs.log line, no events log, no file
    command = [PYTHON, "-m", "sdxl_nb", "generate", "--prompt", "a fox", "--model", "tiny-sdxl", "--refiner", REFINER,
               "--refiner-switch", "1e-9", "--steps", "4", "--width", str(SMALL["width"]), "--height",
               str(SMALL["height"]), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=python_env(), timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sdxl-nb generate: error: refiner switch 1e-09 leaves the base "
                                                   "model no step") and "from 0.249" in lines[0]
    assert list(out.iterdir()) == []
