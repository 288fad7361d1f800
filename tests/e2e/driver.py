"""What a person does in the lab, as Selenium calls: pick a tab, type, choose, click, wait, take a screenshot."""

from __future__ import annotations

import time
from pathlib import Path

WAIT_S = 60
IMAGE_S = 300  # a job on a busy machine (the first one also loads the model)
# ipywidgets sends a box's later keystrokes only after the kernel answered the first, while a button's click goes at
# once: a click right after typing can reach the kernel before the text. A person is never that quick.
SETTLE_S = 0.5


class LabDriver:
    def __init__(self, browser, artifacts: Path):
        self.browser, self.artifacts = browser, artifacts
        self.shots: list[Path] = []
        self.output: Path | None = None  # the lab's output folder (its jobs.log)
        self.first_seen: dict[str, list[str]] = {}  # dropdown options as the lab opened, by label

    def records(self) -> list[dict]:
        """The lab's jobs.log, one dict per job."""
        import json

        text = (self.output / "jobs.log").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]

    # ---- finding ----
    def find(self, css: str, scope=None, timeout: float = WAIT_S, visible: bool = True):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        root = scope or self.browser

        def found(_driver):
            elements = self.all(css, root) if visible else root.find_elements(By.CSS_SELECTOR, css)
            return elements[0] if elements else False

        return WebDriverWait(self.browser, timeout, poll_frequency=0.25).until(found, f"no {css}")

    def all(self, css: str, scope=None) -> list:
        """The shown elements; one the page removes meanwhile (a gallery cleared by a new job) is left out."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        shown = []
        for element in (scope or self.browser).find_elements(By.CSS_SELECTOR, css):
            try:
                if element.is_displayed():
                    shown.append(element)
            except StaleElementReferenceException:
                continue
        return shown

    def until(self, condition, timeout: float = WAIT_S, message: str = "", *, ignore_stale: bool = True):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # A view the kernel redraws (the queue list on every event) can replace an element while the condition
        # reads it: that reading is asked again, as a person would look again.
        ignored = (StaleElementReferenceException,) if ignore_stale else ()
        wait = WebDriverWait(self.browser, timeout, poll_frequency=0.25, ignored_exceptions=ignored)
        return wait.until(lambda _d: condition(), message)

    # ---- doing ----
    def tab(self, title: str):
        """Select one of the lab's tabs; returns that tab's panel."""
        tab = next(t for t in self.all(".sdxl-lab .lm-TabBar-tab") if t.text.strip() == title)
        tab.click()
        css = {"Generate": ".sdxl-generate-panel", "Animate": ".sdxl-animate-panel", "Sweep": ".sdxl-sweep-panel",
               "Queue": ".sdxl-queue-panel", "Presets": ".sdxl-preset-editor",
               "PNG Info": ".sdxl-png-info-panel"}[title]
        return self.find(css)

    def type(self, element, text: str, enter: bool = False) -> None:
        """Replace the text of an input or textarea (or of the one inside a widget) and leave the box."""
        from selenium.webdriver.common.keys import Keys

        if element.tag_name not in ("input", "textarea"):
            element = self.find("input, textarea", element)
        if element.get_property("value") == text:  # already so: a person types nothing (and waits for nothing)
            return
        self.until(lambda: element.is_enabled(), message="the box stays disabled")
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(text)
        element.send_keys(Keys.ENTER if enter else Keys.TAB)
        time.sleep(SETTLE_S)

    def field(self, scope, label: str, timeout: float = 30):
        """The input of the widget whose description is `label` (e.g. "Steps") inside `scope`; one the kernel is
        still adding (a ControlNet unit after Add) is waited for."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By

        def found():
            for box in scope.find_elements(By.CSS_SELECTOR, ".widget-inline-hbox"):
                labels = box.find_elements(By.CSS_SELECTOR, "label.widget-label")
                if labels and labels[0].text.strip() == label and box.is_displayed():
                    return box.find_element(By.CSS_SELECTOR, "input, textarea, select")
            return False

        try:
            return self.until(found, timeout)
        except TimeoutException:
            raise AssertionError(f"no field {label!r}") from None

    def choose(self, select, starts_with: str) -> None:
        """Choose the dropdown option whose text starts with `starts_with` (ipywidgets keeps the index)."""
        from selenium.webdriver.support.ui import Select

        menu = Select(select)
        if menu.first_selected_option.text.startswith(starts_with):  # already chosen
            return
        menu.select_by_index(next(i for i, o in enumerate(menu.options) if o.text.startswith(starts_with)))
        time.sleep(SETTLE_S)

    def button(self, scope, text: str):
        return next(b for b in self.all("button", scope) if _text(b) == text)

    def click(self, scope, text: str) -> None:
        from selenium.common.exceptions import StaleElementReferenceException

        for attempt in range(3):  # a redrawn view (the queue list) may replace the button between finding and click
            button = self.button(scope, text)
            try:
                self.until(lambda: button.is_enabled(), message=f"{text} stays disabled",  # noqa: B023
                           ignore_stale=False)
                button.click()
                return
            except StaleElementReferenceException:
                if attempt == 2:
                    raise

    def small_request(self, panel, prompt: str, style: str | None = None, steps: int = 2) -> None:
        """The form every tab shares: prompt, style, a 64 px custom size, few steps."""
        self.type(self.find(".sdxl-prompt textarea", panel), prompt)
        if style:
            self.choose(self.find(".sdxl-style select", panel), style)
        self.choose(self.find(".sdxl-size select", panel), "custom")
        for label in ("Width", "Height"):
            self.type(self.field(panel, label), "64")
        self.type(self.field(panel, "Steps"), str(steps))

    def generate_tab(self, prompt: str, style: str = "None / Raw", steps: int = 2):
        """The Generate tab as a fresh user finds it: txt2img, no refiner, hires fix, ControlNet or IP-Adapter, every
        feature section closed, one image of 64 px (whatever an earlier test left in the form); returns the panel."""
        panel = self.tab("Generate")
        for close in self.all(".sdxl-viewer-close", panel):
            close.click()
        self.click(panel, "txt2img")
        self.choose(self.find(".sdxl-refiner select", self.section(panel, "refiner")), "none")
        hires = self.find(".sdxl-hires input[type=checkbox]", self.section(panel, "hires-fix"))
        if hires.is_selected():
            hires.click()
        controlnet = self.section(panel, "controlnet")

        def units() -> int:  # ControlNet units, one Remove button each
            return sum(_text(b) == "Remove" for b in self.all("button", controlnet))

        while (left := units()) > 0:
            self.click(controlnet, "Remove")
            self.until(lambda: units() < left, 30, "the ControlNet unit stayed")  # noqa: B023
        self.choose(self.field(self.section(panel, "ip-adapter"), "IP-Adapter"), "(none)")
        self.close_sections(panel)
        self.type(self.field(panel, "Batch"), "1")
        self.choose(self.field(panel, "At once"), "whole batch")
        self.small_request(panel, prompt, style=style, steps=steps)
        return panel

    # ---- sections (collapsed feature groups: a click on the title opens one) ----
    def section(self, scope, slug: str, opened: bool = True):
        """The section .sdxl-section-SLUG in `scope`, opened (or closed) by clicking its title as a person would."""
        section = self.find(f".sdxl-section-{slug}", scope)
        if self.section_open(section) != opened:
            self.find(".jupyter-widget-Collapse-header", section).click()
            self.until(lambda: self.section_open(section) == opened, 30, f"section {slug} did not open or close")
            time.sleep(SETTLE_S)  # the kernel hears of it (selected_index) before the next click
        return section

    def section_open(self, section) -> bool:
        return bool(section.find_elements("css selector", ".jupyter-widget-Collapse-open"))

    def section_title(self, section) -> str:
        return _text(self.find(".jupyter-widget-Collapse-header", section)) or ""

    def close_sections(self, scope) -> None:
        for section in self.all(".sdxl-section", scope):
            if self.section_open(section):
                self.find(".jupyter-widget-Collapse-header", section).click()
                self.until(lambda: not self.section_open(section), 30, "a section did not close")  # noqa: B023

    def run_job(self, panel, button: str = "Generate", timeout: float = IMAGE_S) -> str:
        """Press Generate and wait for "job #N done: K image(s) saved" (a new N) and the gallery's images."""
        message = self.status(".sdxl-message", panel)
        before = message.text
        self.click(panel, button)
        # Done when the line says the images are saved, or turns red (bad input, a failed job): no waiting then.
        self.until(lambda: message.text != before and (
            "image(s) saved" in message.text or "sdxl-status-error" in message.get_attribute("innerHTML")),
            timeout, f"{button} did not finish")
        assert "image(s) saved" in message.text, message.text
        # The newest image large (a batch's images also as thumbnails; one image has no thumbnail beside it).
        self.until(lambda: self.all(".sdxl-newest-image", panel), 30, "no newest image")
        self.until(lambda: all(self.image_loaded(image) for image in self.all(".sdxl-newest-image, .sdxl-gallery-item img",
                                                                               panel)), 30, "images did not load")
        return message.text

    def status(self, css: str, scope=None):
        """A status line (an empty one takes no room, so it is found whether shown or not)."""
        return self.find(css, scope, visible=False)

    def image_loaded(self, image) -> bool:
        return self.browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)

    def shot(self, name: str, element=None, above: int = 48) -> Path:
        """Scroll `element` (else the lab) to the top of the notebook, `above` px lower (a panel keeps its tab bar
        in view), and save what the window shows of the lab as e2e-NAME.png (JupyterLab's side bar and the
        notebook's other cells cut away); an element of a results column is shown with that column only (the form
        beside it is scrolled away above)."""
        import io

        from PIL import Image

        target = element or self.find(".sdxl-lab")
        # The part of the lab inside the notebook's scrolling pane, in screenshot pixels.
        box = self.browser.execute_script("""
            const target = arguments[0], lab = arguments[2];
            target.scrollIntoView({block: 'start'});
            let pane = target.parentElement;
            while (pane && !(pane.scrollHeight > pane.clientHeight && getComputedStyle(pane).overflowY !== 'visible'))
              pane = pane.parentElement;
            if (pane) pane.scrollTop -= arguments[1];
            const r = (target.closest('.sdxl-results') || lab).getBoundingClientRect();
            const p = pane ? pane.getBoundingClientRect() : r;
            const k = window.devicePixelRatio || 1;
            return [r.left - 8, Math.max(r.top, p.top), r.right + 8, Math.min(r.bottom + 8, p.bottom)].map(v => v * k);""",
            target, above, self.find(".sdxl-lab"))
        time.sleep(0.5)  # let images and canvases paint
        window = Image.open(io.BytesIO(self.browser.get_screenshot_as_png()))
        left, top, right, bottom = (round(v) for v in box)
        crop = (max(0, left), max(0, top), min(window.width, right), min(window.height, bottom))
        path = self.artifacts / f"e2e-{name}.png"
        window.crop(crop).save(path)
        self.shots.append(path)
        return path

    # ---- what a person reads ----
    def errors(self, scope=None) -> list[str]:
        """The red one-line messages shown in `scope` (a status line of kind "error")."""
        return [text for text in (_text(e) for e in self.all(".sdxl-status-error", scope)) if text]

    def row_of(self, element):
        """The widget row (HBox) an element sits in: a picker's Refresh beside its dropdown."""
        return element.find_element("xpath", "./ancestor::div[contains(@class, 'widget-hbox')][1]")

    def options(self, select) -> list[str]:
        from selenium.webdriver.support.ui import Select

        return [option.text for option in Select(select).options]

    # ---- files ----
    def upload(self, scope, label: str, *paths: Path) -> None:
        """Pick files with the FileUpload button labelled `label`, as the file dialog would.

        ipywidgets keeps the button's <input type=file> out of the page and clicks it from the button: the click is
        caught here to put the input in the page, where Chromium's driver can give it files without a dialog."""
        upload = next(b for b in self.all("button.widget-upload", scope) if (_text(b) or "").startswith(label))
        self.browser.execute_script("""
            const original = HTMLInputElement.prototype.click;
            HTMLInputElement.prototype.click = function () {
              if (this.type !== 'file') return original.call(this);
              this.setAttribute('data-e2e-upload', '1');
              this.style.display = 'none';
              document.body.appendChild(this);
            };
            try { arguments[0].click(); } finally { HTMLInputElement.prototype.click = original; }""", upload)
        chooser = self.find("input[data-e2e-upload]", visible=False)
        chooser.send_keys("\n".join(str(path) for path in paths))
        self.browser.execute_script("arguments[0].remove()", chooser)
        # The button counts the files the kernel received: "Control image (1)".
        self.until(lambda: f"({len(paths)})" in (_text(upload) or ""), 30, f"{label}: the upload did not arrive")

    def thumbnails(self, scope, kind: str) -> list:
        """The loaded previews of one picker's input images (kind: init, mask, control, reference)."""
        return [img for img in self.all(f".sdxl-thumbs-{kind} img", scope) if self.image_loaded(img)]


def _text(element) -> str | None:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return element.text.strip()
    except StaleElementReferenceException:
        return None
