"""What a person does in the lab, as Selenium calls: pick a tab, type, choose, click, wait, take a screenshot."""

from __future__ import annotations

import time
from pathlib import Path

WAIT_S = 60
# ipywidgets sends a box's later keystrokes only after the kernel answered the first, while a button's click goes at
# once: a click right after typing can reach the kernel before the text. A person is never that quick.
SETTLE_S = 0.5


class LabDriver:
    def __init__(self, browser, artifacts: Path):
        self.browser, self.artifacts = browser, artifacts
        self.shots: list[Path] = []

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
        self.until(lambda: element.is_enabled(), message="the box stays disabled")
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(text)
        element.send_keys(Keys.ENTER if enter else Keys.TAB)
        time.sleep(SETTLE_S)

    def field(self, scope, label: str):
        """The input of the widget whose description is `label` (e.g. "Steps") inside `scope`."""
        from selenium.webdriver.common.by import By

        for box in scope.find_elements(By.CSS_SELECTOR, ".widget-inline-hbox"):
            labels = box.find_elements(By.CSS_SELECTOR, "label.widget-label")
            if labels and labels[0].text.strip() == label and box.is_displayed():
                return box.find_element(By.CSS_SELECTOR, "input, textarea, select")
        raise AssertionError(f"no field {label!r}")

    def choose(self, select, starts_with: str) -> None:
        """Choose the dropdown option whose text starts with `starts_with` (ipywidgets keeps the index)."""
        from selenium.webdriver.support.ui import Select

        menu = Select(select)
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

    def status(self, css: str, scope=None):
        """A status line (an empty one takes no room, so it is found whether shown or not)."""
        return self.find(css, scope, visible=False)

    def image_loaded(self, image) -> bool:
        return self.browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)

    def shot(self, name: str, element=None) -> Path:
        """Scroll `element` (else the lab) to the top of its pane and save the window."""
        target = element or self.find(".sdxl-lab")
        self.browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", target)
        time.sleep(0.5)  # let images and canvases paint
        path = self.artifacts / f"e2e-{len(self.shots) + 1:02d}-{name}.png"
        self.browser.save_screenshot(str(path))
        self.shots.append(path)
        return path


def _text(element) -> str | None:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return element.text.strip()
    except StaleElementReferenceException:
        return None
