"""One JupyterLab (with a token), one headless Chromium and one lab for the whole browser suite: notebook 01 is
opened and Run All once, then each test picks its tab and sets its own form values on the same page.

Screenshots go to test-artifacts/ (a failing test leaves e2e-failure-<test>.png); the README's tour images are
copied from them into docs/images/ at the end of the session.
"""

from __future__ import annotations

import json
import os
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

CHROMIUM = os.environ.get("SDXL_NB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SDXL_NB_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
DOC_IMAGES = REPO / "docs" / "images"
# Screenshot (test-artifacts/e2e-NAME.png) -> the README's picture of it (docs/images/NAME.png).
README_SHOTS = ("generate-style", "gallery-info", "gallery-compare", "inpaint-painted-mask", "generate-controlnet",
                "animate-slerp", "sweep", "queue-cancelled", "png-info", "presets-saved")
README_HEIGHT = 1400  # px of a screenshot the README shows (a long job info below is left out)
# 1400 px wide: JupyterLab's side bar plus a lab column as wide as on a laptop; tall enough for a whole tab.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,2600"]
SERVER_START_S, NOTEBOOK_OPEN_S, LAB_RENDER_S = 120, 120, int(os.environ.get("E2E_T", 300))
BUILD_DEMOS = ("from sdxl_nb.config.tiny import ensure_tiny_model; from sdxl_nb.config.tiny_lora import ensure_demo_lora; "
               "from sdxl_nb.config.tiny_ip_adapter import ensure_demo_ip_adapter; "
               "ensure_tiny_model(); ensure_demo_lora(); ensure_demo_ip_adapter()")
NOTEBOOK_RUN_S = 300  # Run All: the lab cell, then the API cells (a model load and a few tiny generations)


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


@pytest.fixture(scope="session")
def artifacts():
    """test-artifacts/ without the last run's screenshots; the README's chosen ones are copied out at the end."""
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("e2e-*.png"):
        old.unlink()
    yield ARTIFACTS
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for name in README_SHOTS:
        shot = ARTIFACTS / f"e2e-{name}.png"
        if shot.is_file():  # a test run alone (-k) refreshes only its own pictures
            with Image.open(shot) as image:  # the tab's top: its form with the results beside it
                top = image.crop((0, 0, image.width, min(image.height, README_HEIGHT)))
                top.save(DOC_IMAGES / f"{name}.png", optimize=True)


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a random token, serving a copy of notebooks/01_generate.ipynb."""
    root = tmp_path_factory.mktemp("e2e")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    shutil.copy(REPO / "notebooks" / "01_generate.ipynb", notebooks)
    token, port = secrets.token_hex(24), free_port()
    env = python_env({**write_jupyter_settings(root / "jupyter"), "SDXL_NB_OUTPUT": str(notebooks / "output_images")})
    # A returning user's cache: the demo model, LoRA and IP-Adapter were built by an earlier session, so the lab's
    # pickers list them as it opens (on a first run Refresh builds them). Built while the server starts.
    demos = subprocess.Popen([PYTHON, "-c", BUILD_DEMOS], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = open(root / "jupyter.log", "w", encoding="utf-8")  # noqa: SIM115 (closed in teardown)
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
            pytest.fail(f"JupyterLab did not start: {(root / 'jupyter.log').read_text()[-2000:]}")
        time.sleep(0.5)
    built, _ = demos.communicate(timeout=SERVER_START_S)
    assert demos.returncode == 0, built.decode(errors="replace")[-2000:]
    yield {"base": base, "token": token, "notebooks": notebooks, "output": notebooks / "output_images"}
    server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the group this fixture started (server and its kernels)
        server.wait(10)
    log.close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.fail(f"{path} is missing: run scripts/setup-e2e.sh (installs chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
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


def open_notebook(browser, jupyter) -> None:
    """Log in with the token, Run All through the menu, wait for the lab and for every cell to have run."""
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
    wait_for(browser, ".sdxl-lab", LAB_RENDER_S, visible=True)

    def every_cell_ran(driver) -> bool:  # "[3]:" once run, "[*]:" while queued or running; a failed cell stops it
        prompts = [p.text.strip() for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]
        return bool(prompts) and not any("*" in p for p in prompts)

    WebDriverWait(browser, NOTEBOOK_RUN_S, poll_frequency=0.5).until(every_cell_ran, "Run All did not finish")
    errors = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "Error" in e.text.split("\n")[0]]
    assert not tracebacks, tracebacks[0][-1500:]


@pytest.fixture(scope="session")
def lab(jupyter, browser, artifacts):
    """The lab of notebook 01 after Run All, as a LabDriver; `lab.output` is its output folder."""
    from tests.e2e.driver import IMAGE_S, LabDriver

    driver = LabDriver(browser, artifacts)
    driver.output = jupyter["output"]
    try:
        open_notebook(browser, jupyter)
        # The notebook's API cell loaded the model after the lab appeared: the model panel must say so.
        driver.until(lambda: "loaded: tiny-sdxl" in driver.status(".sdxl-model-status").text, IMAGE_S,
                     "model line stale")
        # What the pickers offer before anyone pressed Refresh (test_generate_tab.py reads it).
        panel = driver.tab("Generate")
        driver.first_seen = {label: driver.options(driver.field(driver.section(panel, slug), label))
                             for label, slug in (("LoRA", "loras"), ("IP-Adapter", "ip-adapter"))}
        driver.close_sections(panel)
    except Exception:
        browser.save_screenshot(str(artifacts / "e2e-failure-open.png"))
        raise
    return driver


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test leaves a screenshot of the page as it was (test-artifacts/e2e-failure-<test>.png)."""
    outcome = yield
    report = outcome.get_result()
    lab = getattr(item, "funcargs", {}).get("lab")
    if report.when == "call" and report.failed and lab is not None:
        lab.browser.save_screenshot(str(ARTIFACTS / f"e2e-failure-{item.name}.png"))
