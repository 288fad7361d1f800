"""The Animate and Sweep panels driven headless: set values, click, wait for the background run, check state."""

import pytest

pytest.importorskip("ipywidgets")

from sdxl_nb.record.joblog import read_records  # noqa: E402
from sdxl_nb.ui.animate_panel import AnimatePanel, animate_panel  # noqa: E402
from sdxl_nb.ui.sweep_panel import SweepPanel, sweep_panel  # noqa: E402

PNG, GIF = b"\x89PNG", b"GIF8"


def finish(panel, timeout=300):
    assert panel.thread is not None
    panel.thread.join(timeout)
    assert not panel.thread.is_alive()


def test_animate_panel_runs_in_the_background_and_shows_grid_and_gif(engine, tmp_path):
    panel = AnimatePanel(out_dir=tmp_path, engine=engine)
    assert panel.frames.value == 8 and panel.mode.value == "seed-walk"
    assert panel.end_fields.layout.display == "none"
    panel.prompt.value = "a panel fox"
    panel.frames.value, panel.steps.value, panel.seed.value, panel.fps.value = 2, 2, "11", 4.0
    panel.mode.value = "slerp"
    assert panel.end_fields.layout.display is None and panel.walk_fields.layout.display == "none"
    panel.seed_end.value = "12"
    panel.run_button.click()
    assert panel.run_button.disabled or not panel.thread.is_alive()
    finish(panel)
    assert panel.status.value.startswith("ok: 2 of 2 frames"), panel.status.value
    assert panel.progress.value == 2 and panel.progress.max == 2
    assert bytes(panel.grid_view.value).startswith(PNG) and bytes(panel.animation_view.value).startswith(GIF)
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["animation"]["mode"] == "slerp" and record["animation"]["seed_end"] == 12
    assert record["animation"]["fps"] == 4 and record["seeds"] == [11, 11]
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_animate_panel_bad_input_is_one_line_and_starts_nothing(engine, tmp_path):
    panel = AnimatePanel(out_dir=tmp_path / "out", engine=engine)
    panel.prompt.value = "x"
    for setting, message in [(("frames", 1), "frames 1 is out of range"), (("fps", 0.0), "fps 0 is out of range"),
                             (("seed", "abc"), "seed must be a whole number")]:
        getattr(panel, setting[0]).value = setting[1]
        panel.run_button.click()
        assert panel.thread is None and message in panel.status.value and "<b>error:</b>" in panel.status.value
        panel.frames.value, panel.fps.value, panel.seed.value = 8, 8.0, ""
    panel.mode.value = "slerp"
    panel.run_button.click()
    assert panel.thread is None and "slerp needs a seed end" in panel.status.value
    assert not (tmp_path / "out").exists()


def test_animate_panel_stop_keeps_finished_frames(engine, tmp_path):
    panel = AnimatePanel(out_dir=tmp_path, engine=engine)
    panel.prompt.value, panel.frames.value, panel.steps.value, panel.seed.value = "stop", 3, 2, "1"
    panel.variation.value = 0.0
    panel.frames_per_call.value = 1
    # The first saved frame presses Stop (observers run in the worker thread, before the next call starts).
    panel.progress.observe(lambda change: panel.stop_button.click() if change["new"] == 1 else None, names="value")
    panel.run_button.click()
    finish(panel)
    (record,) = read_records(tmp_path / "jobs.log")
    assert record["status"] == "interrupted" and len(record["frames"]) == 1
    assert panel.status.value.startswith("stopped; finished frames kept: 1 of 3 frames")
    assert bytes(panel.animation_view.value).startswith(GIF)


def test_sweep_panel_runs_cells_and_shows_the_grid(engine, tmp_path):
    panel = SweepPanel(out_dir=tmp_path, engine=engine)
    panel.prompt.value, panel.steps.value, panel.seed.value = "a panel sweep", 2, "4"
    panel.x_field.value, panel.x_values.value = "cfg", "2, 6"
    panel.run_button.click()
    finish(panel)
    assert panel.status.value.startswith("ok: 2 of 2 cells"), panel.status.value
    assert bytes(panel.grid_view.value).startswith(PNG) and panel.progress.value == 2
    records = read_records(tmp_path / "jobs.log")
    cells = [r for r in records if r["mode"] != "sweep"]
    assert [r["cfg"] for r in cells] == [2, 6] and len({r["sweep"]["id"] for r in records}) == 1
    panel.y_field.value, panel.y_values.value = "steps", "2, x"
    panel.run_button.click()
    assert "sweep value 'x' for steps is not a whole number" in panel.status.value and len(read_records(tmp_path / "jobs.log")) == 3


def test_panel_functions_return_displayable_widgets(engine, tmp_path):
    import ipywidgets

    for make in (animate_panel, sweep_panel):
        widget = make(out_dir=tmp_path, engine=engine)
        assert isinstance(widget, ipywidgets.VBox) and widget.panel.widget is widget
