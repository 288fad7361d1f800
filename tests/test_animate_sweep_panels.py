"""The Animate and Sweep panels driven headless: they queue jobs on the job queue, show their own jobs' progress
and results, and their jobs are listed, cancelled and stopped like any other in the Queue panel."""

import html
import io
import json
import threading

import pytest
from PIL import Image

pytest.importorskip("ipywidgets")

from sdxl_nb.jobs.queue import JobQueue  # noqa: E402
from sdxl_nb.record.joblog import read_records  # noqa: E402
from sdxl_nb.request.resolve import GenerationRequest  # noqa: E402
from sdxl_nb.ui.animate_panel import AnimatePanel, animate_panel  # noqa: E402
from sdxl_nb.ui.queue_panel import QueuePanel  # noqa: E402
from sdxl_nb.ui.sweep_panel import SweepPanel, sweep_panel  # noqa: E402
from tests.conftest import SMALL  # noqa: E402
from tests.ui_helpers import status_kind, status_text  # noqa: E402

PNG, GIF = b"\x89PNG", b"GIF8"


@pytest.fixture
def queue(engine, tmp_path):
    return JobQueue(engine=engine, out_dir=tmp_path / "out")


def hold_first_job(queue):
    """Hold the worker in the first job's first step until released (so later jobs wait in the queue)."""
    entered, release = threading.Event(), threading.Event()

    def listener(event):
        if event["type"] == "progress" and not entered.is_set():
            entered.set()
            release.wait(60)

    queue.subscribe(listener)
    return entered, release


def test_animate_panel_queues_a_job_and_shows_frames_then_grid_and_gif(queue, tmp_path):
    panel, view = AnimatePanel(queue), QueuePanel(queue)
    assert panel.frames.value == 8 and panel.mode.value == "seed-walk"
    assert panel.end_fields.layout.display == "none" and panel.prompt_end.layout.display == "none"
    assert panel.form.prompt.layout.display != "none"  # the prompt has its own layout: hiding prompt end keeps it
    panel.form.prompt.value = "a panel fox"
    panel.frames.value, panel.form.steps.value, panel.fps.value = 2, 2, 4.0
    panel.form.use_seed(11)
    panel.frames_per_call.value = 1
    panel.mode.value = "slerp"
    assert panel.end_fields.layout.display is None and panel.walk_fields.layout.display == "none"
    panel.seed_end.value = "12"
    sheets_while_running = []
    panel.grid_view.observe(lambda change: queue.running() is not None and sheets_while_running.append(change.new),
                            "value")
    panel.run_button.click()
    (job,) = queue.jobs()
    assert (job.kind, job.owner) == ("animate", panel) and not panel.run_button.disabled
    assert queue.wait_idle(300)
    assert job.status == "ok" and panel.result is job.result
    # Each pipeline call's frames are shown as they are saved, before the job ends.
    assert len([sheet for sheet in sheets_while_running if bytes(sheet).startswith(PNG)]) >= 2
    assert status_kind(panel.status) == "ok" and f"job #{job.id} done: 2 of 2 frames" in panel.status.value
    assert panel.progress.value == 1 and f"job #{job.id}" in panel.progress_text.value
    assert bytes(panel.grid_view.value).startswith(PNG) and bytes(panel.animation_view.value).startswith(GIF)
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["animation"]["mode"] == "slerp" and record["animation"]["seed_end"] == 12
    assert record["animation"]["fps"] == 4 and record["seeds"] == [11, 11]
    assert not panel.run_button.disabled and panel.stop_button.disabled
    assert "[animate]" in view.row_labels()[0] and "ok" in view.row_labels()[0]


def test_animate_panel_bad_input_is_one_line_and_queues_nothing(queue, tmp_path):
    from PIL import Image

    from sdxl_nb.ui.uploads import upload_value

    panel = AnimatePanel(queue)
    panel.form.prompt.value = "x"
    Image.new("RGB", (64, 64)).save(tmp_path / "init.png")
    panel.init_upload.value = upload_value(tmp_path / "init.png")  # strength applies with an init image
    for setting, message in [(("frames", 1), "frames 1 is out of range"), (("fps", 0.0), "fps 0 is out of range"),
                             (("strength", "half"), "strength must be a number")]:
        getattr(panel, setting[0]).value = setting[1]
        assert panel.submit() is None
        assert status_kind(panel.status) == "error" and message in panel.status.value
        assert panel.status.value.count("<div") == 1 and queue.jobs() == []
        panel.frames.value, panel.fps.value, panel.strength.value = 8, 8.0, ""
    panel.remove_init.click()
    panel.mode.value = "slerp"
    panel.run_button.click()
    assert "slerp needs a seed end" in panel.status.value and queue.jobs() == []
    panel.seed_end.value = "abc"
    panel.run_button.click()
    assert "seed end must be a whole number" in panel.status.value and queue.jobs() == []
    assert not (tmp_path / "out").exists()


def test_animate_panel_stop_keeps_finished_frames(queue, tmp_path):
    panel = AnimatePanel(queue)
    panel.form.prompt.value, panel.frames.value, panel.form.steps.value = "stop", 3, 2
    panel.form.use_seed(1)
    panel.variation.value = 0.0
    panel.frames_per_call.value = 1
    stop_enabled = []

    def stop_in_second_call(event):  # the panel's own view saw this event first
        if event["type"] == "progress" and event["progress"]["chunk"] == 2 and not stop_enabled:
            stop_enabled.append(not panel.stop_button.disabled)
            panel.stop_button.click()

    queue.subscribe(stop_in_second_call)
    job = panel.submit()
    assert job.wait(300) and job.status == "interrupted" and stop_enabled == [True]
    (record,) = read_records(tmp_path / "out" / "jobs.log")
    assert record["status"] == "interrupted" and len(record["frames"]) == 1
    assert f"job #{job.id} stopped; finished frames kept: 1 of 3 frames" in panel.status.value
    assert bytes(panel.animation_view.value).startswith(GIF) and panel.stop_button.disabled


def test_waiting_animate_jobs_are_cancelled_in_the_queue_panel(queue, tmp_path):
    panel, view = AnimatePanel(queue), QueuePanel(queue)
    entered, release = hold_first_job(queue)
    first = queue.submit(GenerationRequest(prompt="ahead", model="tiny-sdxl", seed=1, **SMALL))
    assert entered.wait(60)
    panel.form.prompt.value, panel.frames.value, panel.form.steps.value = "waits", 2, 2
    panel.run_button.click()
    panel.run_button.click()  # Run stays usable: a second animation queues behind the first
    assert "queued job #3 (2 ahead of it)" in panel.status.value
    rows = view.row_labels()
    assert ["[generate]" in rows[0] and "running" in rows[0]] + ["[animate]" in r and "queued" in r for r in rows[1:]] \
        == [True, True, True]
    for row in view.rows.children[1:]:
        cancel = row.children[1]
        assert cancel.description == "Cancel"
        cancel.click()
    assert "cancelled before it started" in panel.status.value
    release.set()
    assert queue.wait_idle(120)
    assert first.status == "ok" and [job.status for job in queue.jobs()[1:]] == ["cancelled", "cancelled"]
    assert [r["mode"] for r in read_records(tmp_path / "out" / "jobs.log")] == ["txt2img"]


def test_sweep_panel_queues_cells_and_shows_the_grid(queue, tmp_path):
    panel = SweepPanel(queue)
    panel.scoring.run_button.click()  # nothing to score yet: said, nothing written
    assert status_kind(panel.scoring.status) == "error" and "run a sweep" in status_text(panel.scoring.status)
    panel.form.prompt.value, panel.form.steps.value = "a panel sweep", 2
    panel.form.use_seed(4)
    panel.x_field.value, panel.x_values.value = "cfg", "2, 6"
    cells_seen = []
    queue.subscribe(lambda e: e["type"] == "progress" and cells_seen.append(panel.progress_text.value))
    job = panel.submit()
    assert job.kind == "sweep" and queue.jobs() == [job]
    assert job.wait(300) and job.status == "ok"
    assert any("cell 2/2" in text for text in cells_seen)
    assert status_kind(panel.status) == "ok" and f"job #{job.id} done: 2 of 2 cells" in panel.status.value
    assert bytes(panel.grid_view.value).startswith(PNG) and panel.progress.value == 1
    records = read_records(tmp_path / "out" / "jobs.log")
    cells = [r for r in records if r["mode"] != "sweep"]
    assert [r["cfg"] for r in cells] == [2, 6] and len({r["sweep"]["id"] for r in records}) == 1
    plain_grid = bytes(panel.grid_view.value)
    other = queue.submit(GenerationRequest(prompt="not in the sweep", model="tiny-sdxl", seed=9, **SMALL))
    assert other.wait(300) and other.status == "ok"  # in the same folder: Score grid leaves it unscored
    panel.scoring.clip.value = "openai/clip-vit-large-patch14"  # not in this machine's cache: one line
    panel.scoring.run_button.click()
    assert status_kind(panel.scoring.status) == "error" and "clip-vit-large-patch14" in panel.scoring.status.value
    assert not (tmp_path / "out" / "scores.jsonl").exists() and bytes(panel.grid_view.value) == plain_grid
    panel.scoring.clip.value, panel.scoring.metric.value = "tiny-clip", "aesthetic"
    panel.scoring.run_button.click()  # the grid now carries each cell's score under its label
    assert status_kind(panel.scoring.status) == "ok", status_text(panel.scoring.status)
    assert "2 score(s) written" in status_text(panel.scoring.status)
    scored = [json.loads(line) for line in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert len(scored) == 2 and {line["scorer"] for line in scored} == {"aesthetic"}  # the two cells only
    assert bytes(panel.grid_view.value) != plain_grid
    assert Image.open(io.BytesIO(panel.grid_view.value)).height > Image.open(io.BytesIO(plain_grid)).height
    panel.y_field.value, panel.y_values.value = "steps", "2, x"
    panel.run_button.click()
    assert status_kind(panel.status) == "error" and panel.status.value.count("<div") == 1
    assert "sweep value 'x' for steps is not a whole number" in html.unescape(panel.status.value)
    assert queue.jobs() == [job, other] and len(read_records(tmp_path / "out" / "jobs.log")) == 4


def test_the_sweep_tab_takes_a_hires_fix_and_sweeps_its_denoise(queue, tmp_path):
    panel = SweepPanel(queue)
    panel.form.prompt.value, panel.form.steps.value = "a hires sweep", 2
    panel.form.use_seed(4)
    panel.hires.enabled.value = True
    panel.hires.scale.value, panel.hires.steps.value, panel.hires.upscaler.value = 2.0, 2, "Lanczos"
    panel.x_field.value, panel.x_values.value = "hires_denoise", "0.4, 0.8"
    job = panel.submit()
    assert job is not None and job.wait(300) and job.status == "ok", panel.status.value
    cells = [r for r in read_records(tmp_path / "out" / "jobs.log") if r["mode"] != "sweep"]
    assert [(r["hires"]["denoise"], r["hires"]["upscaler"]["name"]) for r in cells] == [(0.4, "Lanczos"),
                                                                                        (0.8, "Lanczos")]
    assert all(r["hires"]["width"] == 2 * r["width"] for r in cells)


def test_a_running_sweep_is_stopped_from_the_queue_panel(queue, tmp_path):
    panel, view = SweepPanel(queue), QueuePanel(queue)
    panel.form.prompt.value, panel.form.steps.value = "stop me", 2
    panel.form.use_seed(4)
    panel.x_field.value, panel.x_values.value = "cfg", "2, 4, 6"
    stops = []

    def stop_in_second_cell(event):
        if event["type"] == "progress" and event["progress"]["cell"] == 2 and not stops:
            (row,) = view.rows.children
            stops.append(row.children[1].description)
            row.children[1].click()

    queue.subscribe(stop_in_second_cell)
    job = panel.submit()
    assert job.wait(300) and job.status == "interrupted" and stops == ["Stop"]
    assert f"job #{job.id} stopped; finished cells kept: 1 of 3 cells" in panel.status.value
    assert bytes(panel.grid_view.value).startswith(PNG)
    cells = [r for r in read_records(tmp_path / "out" / "jobs.log") if r["mode"] != "sweep"]
    assert [r["status"] for r in cells] == ["ok", "interrupted"]


def test_panel_functions_return_displayable_widgets(queue):
    import ipywidgets

    for make in (animate_panel, sweep_panel):
        widget = make(queue=queue)
        assert isinstance(widget, ipywidgets.Box) and widget.panel.widget is widget
        assert widget.panel.queue is queue
