"""Preset editor: create or edit a style and save it to the user presets file (validated, shown at once)."""

from __future__ import annotations

import html

import ipywidgets as w

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.user_presets import delete_style, on_change, save_style, style_from_fields
from sdxl_nb.errors import PresetError, one_line
from sdxl_nb.ui.widgets import Panel, button, column, labelled_options, set_status

NEW = "__new__"
NO_SCHEDULER = ""
EXAMPLE_PROMPT = "a red fox in the snow"


class PresetEditor(Panel):
    def __init__(self):
        self.choice = w.Dropdown(description="Edit", layout=w.Layout(width="100%"))
        self.name = w.Text(description="Name", placeholder="My style")
        self.prompt = w.Textarea(description="Prompt",
                                 placeholder="{prompt}, film grain, muted colours   ({prompt} once, where the typed "
                                             "prompt goes; without it the text is added after the prompt)",
                                 layout=w.Layout(width="100%", height="56px"))
        self.negative = w.Textarea(description="Negative", placeholder="added after the user's negative",
                                   layout=w.Layout(width="100%", height="48px"))
        self.description = w.Text(description="About", layout=w.Layout(width="100%"))
        self.scheduler = w.Dropdown(description="Scheduler")
        # Text, not number boxes: empty means "the style does not set it".
        self.steps = w.Text(description="Steps", placeholder="(not set)", layout=w.Layout(width="200px"))
        self.cfg = w.Text(description="CFG", placeholder="(not set)", layout=w.Layout(width="200px"))
        self.preview = w.HTML()
        self.status = w.HTML()
        self.status.add_class("sdxl-preset-status")
        self.save = button("Save style", self.save_style, "success")
        self.delete = button("Delete user style", self.delete_style, "danger")
        self._fill_choices()
        self.choice.observe(lambda _c: self._load_choice(), "value")
        for widget in (self.prompt, self.negative):
            widget.observe(lambda _c: self._show_preview(), "value")
        self._load_choice()
        on_change(self._fill_choices)  # saved here or anywhere else in the kernel
        self.widget = column([
            self.choice, self.name, self.prompt, self.negative, self.description,
            w.HBox([self.scheduler, self.steps, self.cfg]), self.preview, w.HBox([self.save, self.delete]),
            self.status,
            w.HTML(f"<small>Saved to {html.escape(str(self._user_path()))}, layered over presets.json "
                   "(a user style with a built-in style's name replaces it).</small>"),
        ])
        self.widget.add_class("sdxl-preset-editor")
        for widget, name in ((self.name, "name"), (self.prompt, "prompt"), (self.save, "save")):
            widget.add_class(f"sdxl-preset-{name}")  # stable hooks for the browser test

    def _user_path(self):
        return load_presets().user_path

    def _fill_choices(self) -> None:
        presets = load_presets()
        current = self.choice.value
        user = set(presets.user_styles)
        self.choice.options = [("new style…", NEW)] + [
            (f"{name} (user)" if name in user else name, name) for name in presets.styles]
        self.choice.value = current if current in presets.styles else NEW
        self.scheduler.options = [("(not set)", NO_SCHEDULER)] + labelled_options(
            [(s.name, "") for s in presets.schedulers.values()])

    def _load_choice(self) -> None:
        presets = load_presets()
        style = presets.styles.get(self.choice.value)
        self.name.value = style.name if style else ""
        self.prompt.value = style.prompt if style else ""  # the placeholder shows the template form
        self.negative.value = style.negative if style else ""
        self.description.value = style.description if style else ""
        self.scheduler.value = (style.scheduler if style else None) or NO_SCHEDULER
        self.steps.value = "" if style is None or style.steps is None else str(style.steps)
        self.cfg.value = "" if style is None or style.cfg is None else f"{style.cfg:g}"
        self.delete.disabled = self.choice.value not in presets.user_styles
        self._show_preview()

    def _show_preview(self) -> None:
        styled = self.prompt.value.replace("{prompt}", EXAMPLE_PROMPT) if "{prompt}" in self.prompt.value else \
            ", ".join(p for p in (EXAMPLE_PROMPT, self.prompt.value) if p)
        self.preview.value = f"<small><b>example:</b> {html.escape(styled)}</small>"

    def save_style(self):
        """Validate and save the form as a user style; one red line when it is not valid."""
        try:
            fields = style_from_fields(self.name.value, self.prompt.value, self.negative.value, self.description.value,
                                       self.scheduler.value or None, self.steps.value, self.cfg.value)
            renamed = self.choice.value if self.choice.value not in (NEW, self.name.value.strip()) else None
            user = set(load_presets().user_styles)
            style = save_style(fields, replace_name=renamed if renamed in user else None)
        except PresetError as exc:
            set_status(self.status, one_line(exc), "error")
            return None
        self.choice.value = style.name
        set_status(self.status, f"saved style {style.name} (hash {style.content_hash}); it is in the style lists now",
                   "ok")
        return style

    def delete_style(self) -> None:
        name = self.choice.value
        if delete_style(name):
            still = name in load_presets().styles
            set_status(self.status, f"deleted user style {name}" + (" (the built-in one shows again)" if still else ""),
                       "ok")
            self.choice.value = name if still else NEW
            self._load_choice()
