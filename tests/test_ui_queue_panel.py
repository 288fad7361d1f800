"""The Queue panel: every kind of job in its row, oldest first as its header says, Stop on any running job but a load."""

import re

import pytest

pytest.importorskip("ipywidgets")

from sdxl_nb.jobs.queue import JobQueue  # noqa: E402
from sdxl_nb.request.resolve import GenerationRequest  # noqa: E402
from sdxl_nb.ui.queue_panel import QueuePanel  # noqa: E402
from tests.conftest import SMALL  # noqa: E402


@pytest.fixture
def queue(engine, tmp_path):
    return JobQueue(engine=engine, out_dir=tmp_path / "out")


def test_queue_panel_lists_every_kind_oldest_first_with_stop_on_all_but_a_load(queue, engine):
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    engine.load(find_model("tiny-sdxl", load_presets()))
    view = QueuePanel(queue)
    buttons = {}

    def buttons_while_running(event):  # the view refreshed on this event before this listener ran
        if event["type"] == "started":
            row = next(r for r in view.rows.children if f"#{event['job_id']} " in r.children[0].value)
            buttons[event["kind"]] = [b.description for b in row.children[1:]]

    queue.subscribe(buttons_while_running)
    queue.submit_load("tiny-sdxl")
    queue.submit(GenerationRequest(prompt="one", model="tiny-sdxl", seed=1, **SMALL))
    queue.submit(GenerationRequest(prompt="two", model="tiny-sdxl", seed=2, **SMALL))
    assert queue.wait_idle(120)
    assert buttons == {"load": [], "generate": ["Stop"]}
    rows = view.row_labels()
    assert [int(re.search(r"</span> #(\d+) ", row).group(1)) for row in rows] == [1, 2, 3]  # as the header says
    assert ["[load]" in rows[0], "[generate]" in rows[1], "[generate]" in rows[2]] == [True, True, True]
