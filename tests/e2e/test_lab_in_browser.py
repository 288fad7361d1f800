"""End to end in a real browser: JupyterLab (with a token) + headless Debian Chromium run notebook 01,
pick a style (the negative box follows), click Generate, and wait for the gallery's image.

Run with `make e2e` (its set-up installs chromium, chromium-driver and selenium); not part of `make test`.
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

pytestmark = pytest.mark.e2e
CHROMIUM = os.environ.get("SDXL_NB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SDXL_NB_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,2600"]
PROMPT = "a lighthouse seen from a real browser"
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


def test_lab_generates_an_image_in_a_real_browser(jupyter, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "e2e-lab.png"
    try:
        browser.get(f"{jupyter['base']}/lab/tree/01_generate.ipynb")
        assert "token" in browser.page_source.lower() or "password" in browser.page_source.lower()  # login page
        browser.get(f"{jupyter['base']}/lab/tree/01_generate.ipynb?token={jupyter['token']}")
        wait_for(browser, ".jp-Notebook .jp-Cell", NOTEBOOK_OPEN_S)
        # The status bar says "Python 3 (ipykernel) | Idle" once the kernel is connected and ready.
        WebDriverWait(browser, NOTEBOOK_OPEN_S, poll_frequency=0.5).until(lambda d: any(
            "| Idle" in item.text for item in d.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-Item")))
        # Run > Run All Cells, through the menu a user would use.
        menus = browser.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
        next(m for m in menus if m.text.strip() == "Run").click()
        wait_for(browser, "li.lm-Menu-item[data-command='runmenu:run-all']", 30, visible=True).click()

        lab = wait_for(browser, ".sdxl-lab", LAB_RENDER_S, visible=True)
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", lab)
        prompt = wait_for(browser, ".sdxl-lab .sdxl-prompt textarea", 30, visible=True)
        prompt.send_keys(PROMPT)
        style = Select(browser.find_element(By.CSS_SELECTOR, ".sdxl-lab .sdxl-style select"))
        # Options show "name — description"; ipywidgets keeps the index, not the value, in the page.
        style.select_by_index(next(i for i, o in enumerate(style.options) if o.text.startswith("Cinematic —")))
        negative = browser.find_element(By.CSS_SELECTOR, ".sdxl-lab .sdxl-negative textarea")
        WebDriverWait(browser, 30).until(lambda _d: "cartoon, anime" in negative.get_property("value"))

        button = browser.find_element(By.CSS_SELECTOR, ".sdxl-lab button.sdxl-generate")
        WebDriverWait(browser, LAB_RENDER_S).until(lambda _d: button.is_enabled())
        button.click()
        image = wait_for(browser, ".sdxl-lab .sdxl-gallery img", IMAGE_S, visible=True)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", image))
        assert "seed " in browser.find_element(By.CSS_SELECTOR, ".sdxl-lab .sdxl-gallery-item").text
        assert "sdxl-status-ok" in browser.find_element(By.CSS_SELECTOR, ".sdxl-lab .sdxl-model-status") \
            .get_attribute("innerHTML")
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", lab)
        browser.save_screenshot(str(shot))
    except Exception:
        browser.save_screenshot(str(ARTIFACTS / "e2e-lab-failure.png"))
        raise
    log = jupyter["notebooks"] / "output_images" / "jobs.log"
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    lab_jobs = [r for r in records if r["prompt"] == PROMPT and r["style"]["name"] == "Cinematic"]
    assert lab_jobs and lab_jobs[-1]["status"] == "ok"
    assert shot.stat().st_size > 10_000
