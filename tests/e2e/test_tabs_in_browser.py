"""The lab's other tabs in a real browser: Presets, Animate (each mode), Sweep, Queue (cancel, stop) and PNG Info;
each test selects its tab and sets its own form values."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
STYLE = "E2E Grain"
FRAMES_S = 300


def test_presets_save_a_style_that_generate_offers(lab):
    presets = lab.tab("Presets")
    lab.type(lab.find(".sdxl-preset-name input", presets), STYLE)
    lab.type(lab.find(".sdxl-preset-prompt textarea", presets), "{prompt}, film grain")
    lab.until(lambda: "a red fox in the snow, film grain" in presets.text, 30, "the template did not arrive")
    lab.click(presets, "Save style")
    lab.until(lambda: "saved style" in lab.status(".sdxl-preset-status", presets).text, 30, "style not saved")
    assert lab.errors(presets) == []
    lab.shot("presets-saved", presets)
    panel = lab.generate_tab("a fox in snow", style=STYLE)  # the saved style is in Generate's list at once
    lab.until(lambda: "a fox in snow, film grain" in panel.text, 30, "the 'sent as' line ignores the style")


def test_animate_in_each_mode(lab, tmp_path):
    from PIL import Image

    animate = lab.tab("Animate")
    # An init image is uploaded as in Generate, previewed, and removed again with its own button.
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), "teal").save(init)
    lab.upload(animate, "Init image", init)
    lab.until(lambda: len(lab.thumbnails(animate, "init")) == 1, 30, "no thumbnail of the init image")
    lab.field(animate, "Strength")  # shown with an init image only
    lab.shot("animate-upload", animate)
    lab.find(".sdxl-remove-init", animate).click()
    lab.until(lambda: not lab.all(".sdxl-thumbs-init img", animate), 30, "the init thumbnail stayed")
    lab.small_request(animate, "a fox walking in snow", style="Cinematic")
    lab.type(lab.field(animate, "Frames"), "3")
    for mode, extra in (("seed-walk", None), ("slerp", ("Seed end", "999")),
                        ("prompt-travel", ("Prompt end", "a fox sleeping in snow"))):
        lab.click(animate, mode)
        if extra:
            lab.type(lab.field(animate, extra[0]), extra[1])
        if mode != "slerp":  # the seed end belongs to slerp: not shown, not sent
            with pytest.raises(AssertionError):
                lab.field(animate, "Seed end", timeout=1)
        status = lab.status(".sdxl-animate-status", animate)
        before = status.text
        lab.click(animate, "Animate")
        lab.until(lambda: status.text != before and "done: 3 of 3 frames" in status.text,  # noqa: B023
                  FRAMES_S, f"{mode} did not finish")
        gif = lab.find(".sdxl-animate-gif", animate)
        lab.until(lambda: lab.image_loaded(gif), 30, "GIF did not load")  # noqa: B023
        assert gif.size["width"] == gif.size["height"] >= 256  # its own (square) aspect ratio, not stretched
        captions = [cell.get_attribute("textContent") for cell in
                    lab.find(".sdxl-animate-panel", visible=False).find_elements("css selector", ".sdxl-gallery-item")]
        assert len(captions) == 3 and all(("-> 999" in c) == (mode == "slerp") for c in captions), captions
        assert lab.errors(animate) == []
        lab.shot(f"animate-{mode}", animate)
    modes = {r["animation"]["mode"] for r in lab.records() if r["mode"] == "animate" and r["prompt"].startswith(
        "a fox walking")}
    assert modes == {"seed-walk", "slerp", "prompt-travel"}


def test_sweep_two_cfg_values(lab):
    sweep = lab.tab("Sweep")
    lab.small_request(sweep, "a lighthouse, swept")
    axis = lab.field(sweep, "X field")
    assert "CFG scale" in lab.options(axis) and "cfg" not in lab.options(axis)  # the fields by their labels
    assert not [o for o in lab.options(axis) if "_" in o], lab.options(axis)  # no raw field names
    lab.choose(axis, "CFG scale")
    lab.type(lab.field(sweep, "X values"), "3, 7")
    status = lab.status(".sdxl-sweep-status", sweep)
    before = status.text
    lab.click(sweep, "Sweep")
    lab.until(lambda: status.text != before and "done: 2 of 2 cells" in status.text, FRAMES_S, "no sweep")
    grid = lab.find(".sdxl-sweep-grid", sweep)
    lab.until(lambda: lab.image_loaded(grid), 30, "grid did not load")
    form, grid_box = lab.find(".sdxl-form-column", sweep).rect, grid.rect
    assert grid_box["x"] >= form["x"] + form["width"] and grid_box["y"] < form["y"] + form["height"]  # beside it
    # Score the grid with the tiny CLIP: each cell's value is drawn under it (the grid grows by a line).
    height = grid.size["height"]
    lab.choose(lab.field(sweep, "CLIP"), "tiny-clip")
    lab.click(sweep, "Score grid")
    scored = lab.status(".sdxl-score-status", sweep)
    lab.until(lambda: "2 score(s) written" in scored.text, 120, "the grid was not scored")
    lab.until(lambda: grid.size["height"] > height, 30, "the grid shows no scores")
    assert lab.errors(sweep) == []
    lab.shot("sweep", sweep)


def test_queue_cancel_a_waiting_job_and_stop_the_running_one(lab):
    sweep = lab.tab("Sweep")
    lab.small_request(sweep, "a lighthouse, queued", steps=500)  # 4000 steps: long enough whatever the machine
    lab.choose(lab.field(sweep, "X field"), "CFG scale")
    lab.type(lab.field(sweep, "X values"), "1, 2, 3, 4, 5, 6, 7, 8")
    lab.click(sweep, "Sweep")
    lab.click(sweep, "Sweep")
    queue = lab.tab("Queue")
    lab.until(lambda: any(b.text == "Cancel" for b in lab.all("button", queue)), 30, "nothing waiting")
    # Each row: status, number, kind, what it does and the prompt in whole words; Stop and Cancel in one column.
    labels = [label.text for label in lab.all(".sdxl-queue-label", queue)]
    assert any("[sweep]" in text and "“a lighthouse, queued”" in text for text in labels), labels
    actions = lab.all(".sdxl-queue-action", queue)
    assert len(actions) == 2 and len({a.rect["x"] for a in actions}) == 1 and len({a.size["width"] for a in actions}) == 1
    cancelled = queue.text.count("cancelled")
    lab.click(queue, "Cancel")
    lab.until(lambda: queue.text.count("cancelled") > cancelled, 30, "not cancelled")
    lab.shot("queue-cancelled", queue)
    stopped = queue.text.count("interrupted")
    lab.click(queue, "Stop")
    lab.until(lambda: queue.text.count("interrupted") > stopped, 300, "not stopped")
    assert not any(b.text in ("Cancel", "Stop") for b in lab.all("button", queue))  # nothing left running
    lab.shot("queue-stopped", queue)


def test_png_info_reads_a_picked_png_and_loads_it_into_generate(lab):
    # The notebook's API cell saved two Cinematic images of this prompt (notebook 01, Run All).
    saved = sorted(lab.output.glob("*lighthouse-on-a-cliff*.png"))[0]
    info = lab.tab("PNG Info")
    lab.upload(info, "Choose a PNG", saved)
    lab.until(lambda: "written by sdxl_nb" in lab.status(".sdxl-png-info-status", info).text, 30, "not read")
    table = lab.find(".sdxl-png-info-table", info)
    assert "a lighthouse on a cliff at dusk" in table.text and "Cinematic" in table.text
    # Fields by their labels in two columns, nothing raw and nothing wider than the panel.
    assert "Schedule type" in table.text and "schedule_type" not in info.text and "['" not in info.text
    assert lab.all(".sdxl-row-read", table) and table.rect["width"] <= info.rect["width"]
    assert lab.errors(info) == []
    lab.shot("png-info", info)
    lab.click(info, "Load into Generate")
    panel = lab.find(".sdxl-generate-panel")
    lab.until(lambda: lab.find(".sdxl-prompt textarea", panel).get_property("value") == "a lighthouse on a cliff at dusk",
              30, "not loaded")
