"""The generate form: prompt, style, scheduler, size, steps, cfg, batch, seed, mode and inputs -> a request."""

from __future__ import annotations

import html
import io
from pathlib import Path

import ipywidgets as w

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import model_presets
from sdxl_nb.config.user_presets import on_change
from sdxl_nb.errors import InputError
from sdxl_nb.request import form
from sdxl_nb.request.resolve import GenerationRequest
from sdxl_nb.ui.styles import fill_styles
from sdxl_nb.ui.widgets import column, labelled_options, show

MODEL_SIZE, CUSTOM_SIZE = "model", "custom"
WIDE = w.Layout(width="100%")
SHARE = dict(width="50%", min_width="0")  # two widgets that split a row


class GenerateForm:
    """Widgets that hold one request; every rule they follow comes from `sdxl_nb.request.form` and `resolve`."""

    def __init__(self, model_id: str):
        self.presets = load_presets()
        self.model_id = model_id
        p = self.presets
        self.style = w.Dropdown(description="Style", layout=w.Layout(**SHARE))
        self.scheduler = w.Dropdown(options=labelled_options([(s.name, s.description) for s in p.schedulers.values()]),
                                    description="Scheduler", layout=w.Layout(**SHARE))
        self.style_info = w.HTML()
        self.prompt = w.Textarea(placeholder="a lighthouse on a cliff at dusk", description="Prompt",
                                 layout=w.Layout(width="100%", height="60px"))
        self.negative = w.Textarea(description="Negative", layout=w.Layout(width="100%", height="48px"),
                                   placeholder="what to avoid (the style's negative is added here when you pick it)")
        self.styled_preview = w.HTML()
        self.resolution = w.Dropdown(description="Size", options=self._size_options())
        self.width = w.IntText(description="Width", layout=w.Layout(width="160px"))
        self.height = w.IntText(description="Height", layout=w.Layout(width="160px"))
        self.match_aspect = w.Checkbox(description="match the aspect ratio of the reference image", indent=False)
        self.size_note = w.HTML()
        # Plain (unbounded) number boxes: a bounded box would clamp silently; resolve() names the range instead.
        self.steps = w.IntText(description="Steps", layout=w.Layout(width="160px"))
        self.cfg = w.FloatText(description="CFG", layout=w.Layout(width="160px"))
        self.batch = w.IntText(value=1, description="Batch", layout=w.Layout(width="160px"))
        # Images per pipeline call: fewer at once use less memory, and Stop keeps every finished call.
        self.at_once = w.Dropdown(options=[("whole batch", 0), ("1", 1), ("2", 2), ("4", 4), ("8", 8)],
                                  description="At once", layout=w.Layout(width="200px"))
        self.seed = w.IntText(value=0, description="Seed", layout=w.Layout(width="220px"))
        self.random_seed = w.Checkbox(value=True, description="random seed", indent=False)
        self.mode = w.ToggleButtons(options=["txt2img", "img2img", "inpaint"], description="Mode",
                                    style={"button_width": "90px"})
        self.init_upload = w.FileUpload(accept="image/*", multiple=False, description="Init image")
        self.mask_upload = w.FileUpload(accept="image/*", multiple=False, description="Mask")
        self.strength = w.FloatText(value=p.defaults.strength, description="Strength", layout=w.Layout(width="160px"))
        self.inputs_note = w.HTML()
        for widget, name in ((self.prompt, "prompt"), (self.negative, "negative"), (self.style, "style")):
            widget.add_class(f"sdxl-{name}")  # stable hooks for the browser test
        self._shown_style = None  # the style whose negative the negative box holds now
        self._defaults = None  # scheduler/steps/cfg the current model + style resolve to
        self._refreshing = False
        self._refresh_styles()
        self.style.observe(lambda _c: self._on_style(), "value")
        self.prompt.observe(lambda _c: self._show_styled(), "value")
        for widget in (self.resolution, self.match_aspect, self.init_upload):
            widget.observe(lambda _c: self._on_size(), "value")
        self.random_seed.observe(lambda _c: self._on_seed(), "value")
        self.mode.observe(lambda _c: self._on_mode(), "value")
        self._on_style()
        self._on_size()
        self._on_seed()
        self._on_mode()
        on_change(self._refresh_styles)
        self.widget = column([
            w.HBox([self.style, self.scheduler], layout=WIDE), self.style_info, self.prompt, self.styled_preview, self.negative,
            w.HBox([self.resolution, self.width, self.height]), self.match_aspect, self.size_note,
            w.HBox([self.steps, self.cfg, self.batch, self.at_once]), w.HBox([self.seed, self.random_seed]),
            self.mode, w.HBox([self.init_upload, self.mask_upload, self.strength]), self.inputs_note,
        ])

    # ---- model and styles ----
    def set_model(self, model_id: str) -> None:
        self.model_id = model_id
        self.resolution.options = self._size_options()
        self._apply_defaults(self.presets.styles[self.style.value], model_changed=True)
        self._on_size()

    def _size_options(self) -> list[tuple[str, str]]:
        native = self._models().get(self.model_id)
        size = native.native_size if native and native.native_size else None
        default = self.presets.resolutions[self.presets.defaults.resolution]
        shown = f"{size[0]}x{size[1]}" if size else f"{default.width}x{default.height}"
        options = [(f"model default ({shown})", MODEL_SIZE)]
        options += [(f"{r.name} · {r.label}" if r.label else r.name, r.name) for r in self.presets.resolutions.values()]
        return options + [("custom", CUSTOM_SIZE)]

    def _models(self) -> dict:
        return model_presets(self.presets)

    def _refresh_styles(self) -> None:
        """Re-read presets (a style may have been saved) and keep the current choice when it still exists."""
        self.presets = load_presets()
        self._refreshing = True  # replacing the options passes through other values: apply only the final one
        try:
            fill_styles(self.style, self.presets)
        finally:
            self._refreshing = False
        if self._shown_style is not None:
            self._on_style()  # the style's content may have changed: show it

    def _on_style(self) -> None:
        if self._refreshing:
            return
        style = self.presets.styles[self.style.value]
        old = self._shown_style
        self.negative.value = form.restyle_negative(self.negative.value, old, style)
        self._shown_style = style
        overrides = [f"{name} {value}" for name, value in
                     (("scheduler", style.scheduler), ("steps", style.steps), ("cfg", style.cfg)) if value is not None]
        text = html.escape(style.description or "")
        if overrides:
            text += f" · sets {html.escape(', '.join(overrides))}"
        self.style_info.value = f"<small>{text} · hash {style.content_hash}</small>"
        self._apply_defaults(style, model_changed=False)
        self._show_styled()

    def _apply_defaults(self, style, model_changed: bool) -> None:
        """Show the scheduler/steps/cfg the style (or the model) sets; a value the user changed is kept
        unless the new style sets that field itself."""
        new = form.style_settings(self.presets, self._models(), self.model_id, style.name)
        old = self._defaults
        for widget, field, set_by_style in ((self.scheduler, "scheduler", style.scheduler),
                                            (self.steps, "steps", style.steps), (self.cfg, "cfg", style.cfg)):
            untouched = old is None or widget.value == getattr(old, field)
            if untouched or set_by_style is not None or model_changed:
                widget.value = getattr(new, field)
        self._defaults = new

    def _show_styled(self) -> None:
        styled = form.styled_prompt(self.prompt.value, self.presets.styles[self.style.value])
        self.styled_preview.value = f"<small><b>sent as:</b> {html.escape(styled)}</small>"

    # ---- size, seed, mode ----
    def _on_size(self) -> None:
        choice = self.resolution.value
        custom = choice == CUSTOM_SIZE
        self.width.disabled = self.height.disabled = not custom
        if not custom:
            size = self._base_size()
            self.width.value, self.height.value = size
        matched = self.matched_size()
        if matched:
            reference, size = matched
            self.size_note.value = f"<small>{html.escape(form.aspect_note(reference, size))}</small>"
        elif self.match_aspect.value:
            self.size_note.value = "<small>upload an init image to match its aspect ratio</small>"
        else:
            self.size_note.value = ""

    def _base_size(self) -> tuple[int, int]:
        choice = self.resolution.value
        if choice == CUSTOM_SIZE:
            return self.width.value, self.height.value
        if choice == MODEL_SIZE:
            model = self._models().get(self.model_id)
            if model and model.native_size:
                return model.native_size
            choice = self.presets.defaults.resolution
        res = self.presets.resolutions[choice]
        return res.width, res.height

    def matched_size(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(reference size, size used) when matching the init image's aspect ratio."""
        upload = _upload(self.init_upload)
        if not self.match_aspect.value or upload is None:
            return None
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(upload[1])) as image:
                reference = image.size
            return reference, form.match_aspect(reference, self._base_size())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, InputError):
            return None  # an unusable image or size is refused, in one line, when the job is submitted

    def _on_seed(self) -> None:
        self.seed.disabled = self.random_seed.value

    def _on_mode(self) -> None:
        mode = self.mode.value
        show(self.init_upload, mode != "txt2img")
        show(self.mask_upload, mode == "inpaint")
        show(self.strength, mode != "txt2img")
        show(self.match_aspect, mode != "txt2img")

    # ---- the request ----
    def chunk_size(self) -> int | None:
        """Images per pipeline call: None for the whole batch ("at most N at once")."""
        at_once = self.at_once.value
        batch = self.batch.value
        return None if not at_once or not isinstance(batch, int) or at_once >= batch else at_once

    def request(self, out_dir: Path) -> tuple[GenerationRequest, list[str]]:
        """The request the form holds and the adjustments made to it (said to the user and recorded).

        Raises InputError (nothing written) when the form cannot make a valid request.
        """
        adjustments: list[str] = []
        style = self.presets.styles[self.style.value]
        own_negative = form.user_negative(self.negative.value, style)
        if own_negative is None:
            own_negative = self.negative.value.strip()
            self.negative.value = form.effective_negative(own_negative, style)
            if style.negative:
                adjustments.append(f"the negative box did not end with style {style.name}'s negative; it was added "
                                   "after your text (shown in the box)")
        d = self._defaults
        fields = dict(prompt=self.prompt.value, negative_prompt=own_negative, model=self.model_id, style=style.name,
                      scheduler=None if self.scheduler.value == d.scheduler else self.scheduler.value,
                      steps=None if self.steps.value == d.steps else self.steps.value,
                      cfg=None if self.cfg.value == d.cfg else self.cfg.value,
                      batch=self.batch.value, seed=None if self.random_seed.value else self.seed.value)
        mode = self.mode.value
        if mode != "txt2img":
            init = _upload(self.init_upload)
            if init is None:
                raise InputError(f"{mode} needs an init image: upload one (or choose txt2img)")
            fields.update(init_image=str(form.save_upload(init[1], out_dir, "init image")), strength=self.strength.value)
            if mode == "inpaint":
                mask = _upload(self.mask_upload)
                if mask is None:
                    raise InputError("inpaint needs a mask image (white = repaint): upload one")
                fields["mask_image"] = str(form.save_upload(mask[1], out_dir, "mask image"))
        matched = self.matched_size() if mode != "txt2img" else None
        if matched:
            fields.update(width=matched[1][0], height=matched[1][1])
            adjustments.append(form.aspect_note(*matched))
        elif self.resolution.value == CUSTOM_SIZE:
            fields.update(width=self.width.value, height=self.height.value)
        elif self.resolution.value != MODEL_SIZE:
            fields["resolution"] = self.resolution.value
        return GenerationRequest(**fields), adjustments


def _upload(widget: w.FileUpload) -> tuple[str, bytes] | None:
    """(name, bytes) of a FileUpload's file, or None."""
    if not widget.value:
        return None
    item = widget.value[0]
    return item["name"], bytes(item["content"])


def upload_value(path: str | Path) -> tuple[dict]:
    """What FileUpload.value holds after a user picks this file (for tests and scripted use)."""
    from datetime import UTC, datetime

    data = Path(path).read_bytes()
    modified = datetime.fromtimestamp(Path(path).stat().st_mtime, tz=UTC)
    return ({"name": Path(path).name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": modified},)
