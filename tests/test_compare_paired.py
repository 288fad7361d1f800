"""Paired comparison (differences per shared seed, seeded bootstrap interval), ranking, and scored sweep grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SMALL


def _frame() -> pd.DataFrame:
    # cfg 7 scores 2 more than cfg 3 on every seed; cfg 5 one less; seed 4 has no cfg 7 image.
    rows = []
    for seed, base in ((1, 10.0), (2, 20.0), (3, 15.0), (4, 12.0)):
        rows += [{"seed": seed, "cfg": 3.0, "clip_score": base}, {"seed": seed, "cfg": 5.0, "clip_score": base - 1}]
        if seed != 4:
            rows.append({"seed": seed, "cfg": 7.0, "clip_score": base + 2})
    rows.append({"seed": 5, "cfg": 3.0, "clip_score": np.nan})
    return pd.DataFrame(rows)


def test_pairs_share_the_seed_and_differ_in_the_setting():
    from sdxl_nb.analysis.paired import compare

    result = compare(_frame(), by="cfg", pair_on="seed", metric="clip_score")
    assert result.baseline == 3.0
    seven = result.pairs[result.pairs["cfg"] == 7.0]
    assert sorted(seven["seed"]) == [1, 2, 3] and (seven["diff"] == 2).all()
    assert (result.pairs.loc[result.pairs["cfg"] == 5.0, "diff"] == -1).all()
    summary = result.summary.set_index("cfg")
    assert summary.loc[7.0, "pairs"] == 3 and summary.loc[5.0, "pairs"] == 4
    assert summary.loc[7.0, "mean_diff"] == 2 and summary.loc[7.0, "ci_low"] == summary.loc[7.0, "ci_high"] == 2
    against_seven = compare(_frame(), by="cfg", metric="clip_score", baseline=7.0)
    assert (against_seven.pairs.loc[against_seven.pairs["cfg"] == 3.0, "diff"] == -2).all()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_the_bootstrap_interval_holds_the_mean_and_repeats_with_its_seed(values, seed):
    from sdxl_nb.analysis.paired import bootstrap_ci

    low, high = bootstrap_ci(values, seed=seed, n_boot=500)
    mean = float(np.mean(values))
    assert low - 1e-9 <= mean <= high + 1e-9
    assert bootstrap_ci(values, seed=seed, n_boot=500) == (low, high)


def test_the_bootstrap_interval_narrows_with_confidence_and_changes_with_the_seed():
    from sdxl_nb.analysis.paired import bootstrap_ci

    values = np.random.default_rng(1).normal(size=30)
    wide, narrow = bootstrap_ci(values, confidence=0.99), bootstrap_ci(values, confidence=0.5)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)


def test_rank_orders_settings_by_their_mean_metric():
    from sdxl_nb.analysis.paired import rank

    table = rank(_frame(), by="cfg", metric="clip_score")
    assert table["cfg"].tolist() == [7.0, 3.0, 5.0] and table["rank"].tolist() == [1, 2, 3]
    assert table["count"].tolist() == [3, 4, 4]
    assert rank(_frame(), by="cfg", metric="clip_score", ascending=True)["cfg"].tolist() == [5.0, 3.0, 7.0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(by="sampler"), "no column 'sampler'"),
    (dict(metric="aesthetic_score"), "no column 'aesthetic_score'"),
    (dict(baseline=9.0), "baseline 9.0 is not a value of 'cfg'"),
])
def test_bad_comparisons_are_one_line(kwargs, message):
    from sdxl_nb.analysis.paired import compare
    from sdxl_nb.errors import InputError

    with pytest.raises(InputError, match=message):
        compare(_frame(), **kwargs)


def test_nothing_to_pair_is_said_plainly():
    from sdxl_nb.analysis.paired import compare
    from sdxl_nb.errors import InputError

    frame = pd.DataFrame({"seed": [1, 2], "cfg": [3.0, 7.0], "clip_score": [1.0, 2.0]})
    with pytest.raises(InputError, match="nothing to pair"):
        compare(frame)


def test_the_plot_shows_every_pair_and_the_interval():
    from sdxl_nb.analysis import paired_plot
    from sdxl_nb.analysis.paired import compare

    result = compare(_frame())
    ax = result.plot()
    assert ax is not None and paired_plot(result).get_xlabel() == "cfg (against 3.0)"
    dots = sum(len(collection.get_offsets()) for collection in ax.collections if collection.get_offsets().size)
    assert dots >= len(result.pairs)


def test_a_scored_sweep_grid_shows_each_cell_s_score(engine, tmp_path):
    from sdxl_nb.analysis import load_jobs
    from sdxl_nb.analysis.paired import sweep_grid
    from sdxl_nb.analysis.scoring import score
    from sdxl_nb.jobs.sweep import axis, rebuild_grid, run_sweep
    from sdxl_nb.request.resolve import GenerationRequest

    sweep = run_sweep(GenerationRequest(prompt="a kite", model="tiny-sdxl", seed=1, **SMALL), x=axis("cfg", [3, 7]),
                      out_dir=tmp_path, engine=engine)
    plain = rebuild_grid(tmp_path, sweep.plan.id)
    assert plain.tobytes() == sweep.grid.tobytes()  # without notes the grid is as recorded
    score(tmp_path, ["clip"], model="tiny-clip", progress=False)
    frame = load_jobs(tmp_path)
    noted = sweep_grid(tmp_path, metric="clip_score", frame=frame)
    assert noted.width == plain.width and noted.height > plain.height
    other = frame.assign(clip_score=frame["clip_score"] + 1)
    assert sweep_grid(tmp_path, sweep.plan.id, frame=other).tobytes() != noted.tobytes()

    from sdxl_nb.ui.image_view import image_box, png_bytes
    from sdxl_nb.ui.sweep_panel import SweepPanel

    panel = SweepPanel.__new__(SweepPanel)  # the hook needs only the last result and the grid's view
    panel.result, panel.grid_view = sweep, image_box("sdxl-sweep-grid")
    panel.show_scores("clip_score")
    assert panel.grid_view.value == png_bytes(sweep_grid(tmp_path, sweep.plan.id))  # the scored grid is on show
