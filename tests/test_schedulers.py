"""Every scheduler preset in presets.json runs a real tiny-sdxl job end to end and is recorded ok."""

import pytest

from sdxl_nb.api import generate
from sdxl_nb.config.presets import load_presets
from sdxl_nb.record.joblog import read_records
from tests.conftest import REPO, SMALL

# The repository's own file, whatever SDXL_NB_PRESETS says: these are the presets that ship.
SCHEDULERS = list(load_presets(REPO / "presets.json", user_layer=False).schedulers)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_preset_runs_and_is_recorded_ok(name, engine, tmp_path):
    # A scheduler whose optional dependency is missing (LMS needs scipy) fails here, not in a user's first job.
    import importlib.util

    from sdxl_nb.config.scheduler_params import EXTRA_REQUIREMENTS
    from sdxl_nb.errors import InputError

    package = EXTRA_REQUIREMENTS.get(load_presets(REPO / "presets.json", user_layer=False).schedulers[name].cls or "")
    if package and importlib.util.find_spec(package) is None:  # not installed: refused in one line before any work
        with pytest.raises(InputError, match=f"pip install {package}"):
            generate(out_dir=tmp_path, engine=engine, prompt="a lighthouse", seed=3, **SMALL, scheduler=name)
        assert not (tmp_path / "jobs.log").exists() or not read_records(tmp_path / "jobs.log")
        return
    result = generate(out_dir=tmp_path, engine=engine, prompt=f"a lighthouse, {name}", seed=3, **SMALL,
                      scheduler=name)
    assert result.status == "ok" and len(result.paths) == 1
    [record] = read_records(tmp_path / "jobs.log")
    assert record["status"] == "ok" and record["error"] is None
    assert record["scheduler"]["name"] == name


def test_the_presets_list_several_schedulers():
    assert len(SCHEDULERS) >= 5 and "LMS" in SCHEDULERS
