"""End to end in a real browser: JupyterLab (with a token) + headless Debian Chromium run notebook 01, then use every
tab as a person would (64 px, 2 steps): generate with a style, gallery actions, stop, inpaint with a painted mask,
save a style and animate with it in each mode, sweep, cancel a queued job, read a PNG; a screenshot of each step.

Run with `make e2e` (its set-up installs chromium, chromium-driver and selenium); not part of `make test`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO, python_env

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("SDXL_NB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SDXL_NB_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,2600"]
PROMPT = "a lighthouse seen from a real browser"
STYLE = "E2E Grain"
SERVER_START_S, NOTEBOOK_OPEN_S, LAB_RENDER_S, IMAGE_S = 120, 120, int(os.environ.get("E2E_T", 300)), 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_jupyter_settings(root: Path) -> dict:
    """Private Jupyter folders: no news prompt, every cell kept in the page (no virtual scrolling)."""
    config, settings = root / "config", root / "settings"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}), encoding="utf-8")
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}), encoding="utf-8")
    return {"JUPYTER_CONFIG_DIR": str(config), "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"), "JUPYTER_RUNTIME_DIR": str(root / "runtime")}


@pytest.fixture
def jupyter(tmp_path):
    """JupyterLab on 127.0.0.1 with a random token, serving a copy of notebooks/01_generate.ipynb."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(REPO / "notebooks" / "01_generate.ipynb", notebooks)
    token, port = secrets.token_hex(24), free_port()
    env = python_env({**write_jupyter_settings(tmp_path / "jupyter"), "SDXL_NB_OUTPUT": str(notebooks / "output_images")})
    log = open(tmp_path / "jupyter.log", "w", encoding="utf-8")  # noqa: SIM115 (closed in teardown)
    server = subprocess.Popen(
        [PYTHON, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyter.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield {"base": base, "token": token, "notebooks": notebooks}
    server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the group this fixture started (server and its kernels)
        server.wait(10)
    log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.fail(f"{path} is missing: run scripts/setup-e2e.sh (installs chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float, visible: bool = False):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    condition = ec.visibility_of_element_located if visible else ec.presence_of_element_located
    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition((By.CSS_SELECTOR, css)))



def open_lab(browser, jupyter):
    """Log in with the token, Run All through the menu, and wait for the lab."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{jupyter['base']}/lab/tree/01_generate.ipynb")
    assert "token" in browser.page_source.lower() or "password" in browser.page_source.lower()  # login page
    browser.get(f"{jupyter['base']}/lab/tree/01_generate.ipynb?token={jupyter['token']}")
    wait_for(browser, ".jp-Notebook .jp-Cell", NOTEBOOK_OPEN_S)
    # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected and ready.
    WebDriverWait(browser, NOTEBOOK_OPEN_S, poll_frequency=0.5).until(lambda d: any(
        "| Idle" in item.text for item in d.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-Item")))
    menus = browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
    next(m for m in menus if m.text.strip() == "Run").click()
    wait_for(browser, "li.lm-Menu-item[data-command='runmenu:run-all']", 30, visible=True).click()
    return wait_for(browser, ".sdxl-lab", LAB_RENDER_S, visible=True)


def wait_gallery(lab, panel, count: int):
    lab.until(lambda: len(lab.all(".sdxl-gallery-item img", panel)) >= count, IMAGE_S, "no gallery image")
    images = lab.all(".sdxl-gallery-item img", panel)
    lab.until(lambda: all(lab.image_loaded(image) for image in images), 30, "gallery images did not load")
    return lab.all(".sdxl-gallery-item", panel)


def test_every_tab_in_a_real_browser(jupyter, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    from tests.e2e.driver import LabDriver

    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("e2e-*.png"):
        old.unlink()
    lab = LabDriver(browser, ARTIFACTS)
    try:
        open_lab(browser, jupyter)
        # The notebook's API cell loads the model after the lab appeared: the model panel must say so.
        lab.until(lambda: "loaded: tiny-sdxl" in lab.status(".sdxl-model-status").text, IMAGE_S, "model line stale")

        # 1. Generate with a style, two images.
        panel = lab.tab("Generate")
        lab.small_request(panel, PROMPT, style="Cinematic")
        negative = lab.find(".sdxl-negative textarea", panel)
        lab.until(lambda: "cartoon, anime" in negative.get_property("value"), 30, "negative box did not follow")
        lab.type(lab.field(panel, "Batch"), "2")
        lab.click(panel, "Generate")
        cells = wait_gallery(lab, panel, 2)
        shown = cells[0].find_element("css selector", "img")
        assert shown.size["width"] == 256 and "seed " in cells[0].text  # 64 px shown at 256 px, not 64
        lab.shot("generate-style", panel)

        # 2. Gallery actions: the record, then two images side by side.
        lab.click(cells[0], "Info")
        info = lab.find(".sdxl-viewer .sdxl-info", panel)
        assert "Steps: 2" in info.text and PROMPT in info.text
        lab.shot("gallery-info", lab.find(".sdxl-viewer", panel))
        lab.click(cells[0], "Compare")
        lab.click(cells[1], "Compare")
        compare = lab.find(".sdxl-viewer .sdxl-compare", panel)
        assert "seed:" in lab.find(".sdxl-differences", panel).text
        assert [img.size["width"] for img in lab.all("img", compare)] == [384, 384]
        lab.shot("gallery-compare", lab.find(".sdxl-viewer", panel))
        lab.click(lab.find(".sdxl-viewer", panel), "Close")

        # 3. Inpaint the first image with a painted mask.
        lab.type(lab.field(panel, "Batch"), "1")
        lab.click(cells[0], "Inpaint")
        canvas = lab.find(".sdxl-mask-canvas", panel)
        assert canvas.size == {"width": 256, "height": 256}  # 64 px painted at 4x, not stretched to the page
        ActionChains(browser).move_to_element_with_offset(canvas, -60, -20).click_and_hold() \
            .move_by_offset(60, 0).move_by_offset(60, 30).release().perform()
        note = lab.find(".sdxl-mask-note", panel)
        lab.until(lambda: "of the image will be repainted" in note.text and not note.text.startswith("0%"), 30,
                  "the brush painted nothing")
        lab.click(panel, "Generate")
        lab.until(lambda: "1 image(s) saved" in lab.status(".sdxl-message", panel).text, IMAGE_S, "inpaint failed")
        lab.shot("inpaint-painted-mask", lab.find(".sdxl-mask-painter", panel))

        # 4. Stop a longer job: the progress line keeps no step count or ETA.
        lab.click(panel, "txt2img")
        lab.type(lab.field(panel, "Batch"), "4")
        lab.choose(lab.field(panel, "At once"), "1")
        lab.type(lab.field(panel, "Steps"), "40")
        lab.click(panel, "Generate")
        lab.until(lambda: re.search(r"step \d+/40", panel.text), IMAGE_S, "no progress")
        lab.click(panel, "Stop")
        lab.until(lambda: "stopped" in lab.status(".sdxl-message", panel).text, IMAGE_S, "did not stop")
        lab.until(lambda: "stopped at step" in panel.text, 30, "progress line kept the ETA")
        assert "ETA" not in panel.text
        lab.shot("generate-stopped", panel)

        # 5. Save a style, then animate with it in each mode.
        presets = lab.tab("Presets")
        lab.type(lab.find(".sdxl-preset-name input", presets), STYLE)
        lab.type(lab.find(".sdxl-preset-prompt textarea", presets), "{prompt}, film grain")
        lab.until(lambda: "a red fox in the snow, film grain" in presets.text, 30, "the template did not arrive")
        lab.click(presets, "Save style")
        lab.until(lambda: "saved style" in lab.status(".sdxl-preset-status", presets).text, 30, "style not saved")
        lab.shot("presets-saved", presets)
        animate = lab.tab("Animate")
        lab.small_request(animate, "a fox walking in snow", style=STYLE)
        assert "a fox walking in snow, film grain" in animate.text  # the saved style, as sent
        lab.type(lab.field(animate, "Frames"), "3")
        for mode, extra in (("seed-walk", None), ("slerp", ("Seed end", "999")),
                            ("prompt-travel", ("Prompt end", "a fox sleeping in snow"))):
            lab.click(animate, mode)
            if extra:
                lab.type(lab.field(animate, extra[0]), extra[1])
            status = lab.status(".sdxl-animate-status", animate)
            before = status.text
            lab.click(animate, "Animate")
            lab.until(lambda: status.text != before and "done: 3 of 3 frames" in status.text,  # noqa: B023
                      IMAGE_S, f"{mode} did not finish")
            gif = lab.find(".sdxl-animate-gif", animate)
            lab.until(lambda: lab.image_loaded(gif), 30, "GIF did not load")  # noqa: B023
            assert gif.size["width"] == gif.size["height"] == 256  # its own (square) aspect ratio, not stretched
            lab.shot(f"animate-{mode}", animate)

        # 6. Sweep two cfg values.
        sweep = lab.tab("Sweep")
        lab.small_request(sweep, "a lighthouse, swept")
        lab.type(lab.field(sweep, "X values"), "3, 7")
        lab.click(sweep, "Sweep")
        lab.until(lambda: "done: 2 of 2 cells" in lab.status(".sdxl-sweep-status", sweep).text, IMAGE_S, "no sweep")
        grid = lab.find(".sdxl-sweep-grid", sweep)
        lab.until(lambda: lab.image_loaded(grid), 30, "grid did not load")
        lab.shot("sweep", sweep)

        # 7. Queue: a long sweep runs, a second waits; cancel the waiting one, stop the running one.
        lab.type(lab.field(sweep, "Steps"), "500")  # 4000 steps: long enough to stay running whatever the machine
        lab.type(lab.field(sweep, "X values"), "1, 2, 3, 4, 5, 6, 7, 8")
        lab.click(sweep, "Sweep")
        lab.click(sweep, "Sweep")
        queue = lab.tab("Queue")
        lab.until(lambda: any(b.text == "Cancel" for b in lab.all("button", queue)), 30, "nothing waiting")
        lab.click(queue, "Cancel")
        lab.until(lambda: "cancelled" in queue.text, 30, "not cancelled")
        lab.shot("queue-cancelled", queue)
        stopped = queue.text.count("interrupted")
        lab.click(queue, "Stop")
        lab.until(lambda: queue.text.count("interrupted") > stopped, IMAGE_S, "not stopped")

        # 8. PNG Info: read a saved image back and load it into the Generate form.
        saved = sorted((jupyter["notebooks"] / "output_images").glob("*lighthouse-seen*.png"))[0]
        info = lab.tab("PNG Info")
        lab.type(lab.find("input", lab.find(".sdxl-png-info-panel .widget-text", info)), str(saved), enter=True)
        lab.click(info, "Read")
        lab.until(lambda: "written by sdxl_nb" in lab.status(".sdxl-png-info-status", info).text, 30, "not read")
        lab.shot("png-info", info)
        lab.click(info, "Load into Generate")
        panel = lab.find(".sdxl-generate-panel")
        lab.until(lambda: lab.find(".sdxl-prompt textarea", panel).get_property("value") == PROMPT, 30, "not loaded")
    except Exception:
        browser.save_screenshot(str(ARTIFACTS / "e2e-failure.png"))
        raise
    records = [json.loads(line) for line in
               (jupyter["notebooks"] / "output_images" / "jobs.log").read_text(encoding="utf-8").splitlines()]
    assert any(r["prompt"] == PROMPT and r["style"]["name"] == "Cinematic" and r["status"] == "ok" for r in records)
    assert any(r["mode"] == "inpaint" and r["mask_image"]["path"].split("/")[-2] == "inputs" for r in records)
    assert {r["animation"]["mode"] for r in records if r["mode"] == "animate" and r["style"]["name"] == STYLE} == {
        "seed-walk", "slerp", "prompt-travel"}
    assert all(path.stat().st_size > 10_000 for path in lab.shots)
