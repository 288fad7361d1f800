"""The request form Generate, Animate and Sweep share: model shown, style, scheduler, prompts, size, steps, cfg, seed."""

from __future__ import annotations

import html

import ipywidgets as w

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import default_model_id, model_presets
from sdxl_nb.config.schedule_types import AUTOMATIC, SCHEDULE_TYPES, find_label
from sdxl_nb.config.user_presets import on_change
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.networks import lora_listing
from sdxl_nb.request import form
from sdxl_nb.request.lint import empty_prompt_warning
from sdxl_nb.request.prompt_syntax import without_tags
from sdxl_nb.ui.lora_picker import LoraPicker, prompt_loras
from sdxl_nb.ui.quick_listings import quick_lora_listing
from sdxl_nb.ui.refiner_form import RefinerFields
from sdxl_nb.ui.sections import Section
from sdxl_nb.ui.styles import fill_styles
from sdxl_nb.ui.widgets import column

MODEL_SIZE, CUSTOM_SIZE = "model", "custom"
WIDE = w.Layout(width="100%")
# Two widgets that split a row equally (width 50% each plus their margins wrapped them onto two rows, each half
# wide, which squeezed the style's and scheduler's descriptions into narrow boxes).
SHARE = dict(flex="1 1 0%", width="auto", min_width="0")
NUMBER = dict(width="160px")


class RequestForm:
    """Widgets that hold the fields every kind of job shares; the rules come from `sdxl_nb.request.form`/`resolve`.

    `model_id` is shown, not chosen here: the lab's model panel chooses it (`follow(model_panel)`). The feature
    groups (LoRAs, Refiner; a panel adds its own) sit in collapsible `sections` below the fields every job has.
    """

    def __init__(self, model_id: str | None = None, *, refiner: bool = True):
        self.presets = load_presets()
        self.model_id = model_id or default_model_id(self.presets)
        p = self.presets
        self.model_line = w.HTML()
        self.style = w.Dropdown(description="Style", layout=w.Layout(**SHARE))
        # Names only (a "name — description" label would be cut off at this width); the description is shown below.
        self.scheduler = w.Dropdown(options=list(p.schedulers), description="Scheduler", layout=w.Layout(**SHARE))
        # A1111's "Schedule type" beside the sampler: labels only (config/schedule_types.py says what each makes).
        self.schedule_type = w.Dropdown(options=[s.label for s in SCHEDULE_TYPES if not s.missing],
                                        value=AUTOMATIC, description="Schedule", layout=w.Layout(**SHARE))
        self.schedule_type.add_class("sdxl-schedule-type")
        self._default_schedule = AUTOMATIC  # the schedule type the current model + style resolve to
        self.style_info = w.HTML(layout=w.Layout(**SHARE))
        self.scheduler_info = w.HTML(layout=w.Layout(**SHARE))
        self.prompt = w.Textarea(placeholder="a lighthouse on a cliff at dusk", description="Prompt",
                                 layout=w.Layout(width="100%", height="60px"))
        self.negative = w.Textarea(description="Negative", layout=w.Layout(width="100%", height="48px"),
                                   placeholder="what to avoid (the style's negative is added here when you pick it)")
        self.styled_preview = w.HTML()
        # A row of its own, Width and Height together on the next (side by side they wrapped Height alone).
        self.resolution = w.Dropdown(description="Size", options=self._size_options(), layout=w.Layout(width="100%"))
        self.width = w.IntText(description="Width", layout=w.Layout(**NUMBER))
        self.height = w.IntText(description="Height", layout=w.Layout(**NUMBER))
        self.size_note = w.HTML()
        # Plain (unbounded) number boxes: a bounded box would clamp silently; resolve() names the range instead.
        self.steps = w.IntText(description="Steps", layout=w.Layout(**NUMBER))
        self.cfg = w.FloatText(description="CFG", layout=w.Layout(**NUMBER))
        self.seed = w.IntText(value=0, description="Seed", layout=w.Layout(width="220px"))
        self.random_seed = w.Checkbox(value=True, description="random seed", indent=False,
                                      layout=w.Layout(width="auto"))
        for widget, name in ((self.prompt, "prompt"), (self.negative, "negative"), (self.style, "style"),
                             (self.resolution, "size"), (self.seed, "seed"), (self.model_line, "model-line")):
            widget.add_class(f"sdxl-{name}")  # stable hooks for the browser test
        self._shown_style = None  # the style whose negative the negative box holds now
        self._defaults = None  # scheduler/steps/cfg the current model + style resolve to
        self._refreshing = False
        self._refresh_styles()
        self.style.observe(lambda _c: self._on_style(), "value")
        self.prompt.observe(lambda _c: self._show_styled(), "value")
        self.resolution.observe(lambda _c: self._on_size(), "value")
        self.scheduler.observe(lambda _c: self._show_scheduler(), "value")
        self.random_seed.observe(lambda _c: self._on_seed(), "value")
        self._on_style()
        self._on_size()
        self._on_seed()
        self._show_scheduler()
        self._show_model()
        on_change(self._refresh_styles)
        # Filled at once by a quick listing (no torch, no hashing: the lab opens light); Refresh checks the fit.
        self.lora_picker = LoraPicker(self.prompt, listing=lambda: lora_listing(self.model_id),
                                      start_listing=lambda: quick_lora_listing(self.model_id))
        self.network_pickers = [self.lora_picker]  # filled fully after a model load if the quick listing was empty
        self.size_row = w.HBox([self.resolution, self.width, self.height])
        self.numbers_row = w.HBox([self.steps, self.cfg])
        self.seed_row = w.HBox([self.seed, self.random_seed])
        self.sections: dict[str, Section] = {}
        self.add_section(Section("LoRAs", self.lora_picker.widget, self._lora_summary)).watch(
            self.prompt, self.negative, self.style)
        # The refiner finishes the base's last steps (A1111's "Refiner" and "Switch at"); Animate has none.
        self.offers_refiner = refiner
        self.refiner_fields = RefinerFields(lambda: self.presets, self._models)
        self.refiner, self.refiner_switch = self.refiner_fields.refiner, self.refiner_fields.switch
        self.refiner_by_steps, self.refiner_row = self.refiner_fields.by_steps, self.refiner_fields.row
        if refiner:
            self.add_section(Section("Refiner", self.refiner_row, self.refiner_fields.summary)).watch(
                self.refiner, self.refiner_switch, self.refiner_by_steps)

    def add_section(self, section: Section) -> Section:
        self.sections[section.name] = section
        return section

    def top_rows(self) -> list[w.Widget]:
        """The fields every job has, always shown: model, style, sampler, prompts, size, steps, cfg, seed."""
        # The style on a row of its own: its "name — description" labels fit there, cut off at half a column.
        return [self.model_line, w.HBox([self.style], layout=WIDE), w.HBox([self.style_info], layout=WIDE),
                w.HBox([self.scheduler, self.schedule_type], layout=WIDE),
                w.HBox([self.scheduler_info], layout=WIDE), self.prompt,
                self.styled_preview, self.negative, self.size_row, self.size_note, self.numbers_row, self.seed_row]

    def rows(self) -> list[w.Widget]:
        """The form's rows, top to bottom: the top rows, then the feature groups' sections (a panel adds its own
        rows after them)."""
        return self.top_rows() + [section.widget for section in self.sections.values()]

    def _lora_summary(self) -> str | None:
        """The LoRAs section's title: the LoRAs the prompt's (and the style's and the negative's) tags apply."""
        style = self.presets.styles.get(self.style.value)
        text = form.styled_prompt(self.prompt.value, style) if style else self.prompt.value
        applied = prompt_loras(f"{text} {self.negative.value}")
        return "a tag is not understood" if applied is None else applied or None

    def build(self, extra: list[w.Widget] = ()) -> w.VBox:
        self.widget = column(self.rows() + list(extra))
        self.widget.add_class("sdxl-request-form")
        return self.widget

    # ---- model and styles ----
    def follow(self, model_panel) -> None:
        """Show (and use) the model chosen in a model panel, now and whenever it changes."""
        self.set_model(model_panel.model_id)
        model_panel.dropdown.observe(lambda change: self.set_model(change.new), "value")
        model_panel.queue.subscribe(self._after_load)

    def _after_load(self, event: dict) -> None:
        if event["type"] == "loaded":
            for picker in self.network_pickers:
                picker.fill_if_empty()

    def set_model(self, model_id: str) -> None:
        self.model_id = model_id
        self.resolution.options = self._size_options()
        self._apply_defaults(self.presets.styles[self.style.value], model_changed=True)
        self._on_size()
        self._show_model()
        self.lora_picker.reload()  # whether each LoRA fits is about the model now chosen

    def _show_model(self) -> None:
        self.model_line.value = (f"<small>Model: <b>{html.escape(self.model_id)}</b> (chosen in the model panel "
                                 "above)</small>")

    def _size_options(self) -> list[tuple[str, str]]:
        shown = "{}x{}".format(*self._model_size())
        options = [(f"model default ({shown})", MODEL_SIZE)]
        options += [(f"{r.name} · {r.label}" if r.label else r.name, r.name) for r in self.presets.resolutions.values()]
        return options + [("custom", CUSTOM_SIZE)]

    def _model_size(self) -> tuple[int, int]:
        model = self._models().get(self.model_id)
        if model and model.native_size:
            return tuple(model.native_size)
        default = self.presets.resolutions[self.presets.defaults.resolution]
        return default.width, default.height

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
        words = " · ".join(part for part in (html.escape(style.description or ""),
                                             f"sets {html.escape(', '.join(overrides))}" if overrides else "") if part)
        # The hash never wraps alone onto a line of its own: it is glued to the word before it.
        glued = f"<span class='sdxl-style-hash' style='white-space:nowrap'>hash {style.content_hash}</span>"
        self.style_info.value = f"<small>{words}&nbsp;·&nbsp;{glued}</small>" if words else f"<small>{glued}</small>"
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
        schedule = self._resolved_schedule(style.name)
        if self.schedule_type.value == self._default_schedule or style.schedule_type is not None or model_changed:
            self.schedule_type.value = schedule
        self._default_schedule = schedule

    def _resolved_schedule(self, style_name: str) -> str:
        """The schedule type a request with this model and style resolves to (resolve()'s own rules)."""
        from sdxl_nb.request.resolve import GenerationRequest, resolve

        try:
            resolved = resolve(GenerationRequest(prompt="", model=self.model_id, style=style_name, seed=0, width=64,
                                                 height=64), self.presets, self._models())
        except InputError:
            return AUTOMATIC
        return resolved.schedule_type if resolved.schedule_type in self.schedule_type.options else AUTOMATIC

    def _show_scheduler(self) -> None:
        scheduler = self.presets.schedulers.get(self.scheduler.value)
        about = html.escape(scheduler.description) if scheduler and scheduler.description else ""
        self.scheduler_info.value = f"<small>scheduler: {about}</small>" if about else ""

    def _show_styled(self) -> None:
        """The text CLIP receives: the styled prompt with its <lora:...> tags taken out, as the pipeline does."""
        sent = without_tags(form.styled_prompt(self.prompt.value, self.presets.styles[self.style.value]))
        # An empty prompt sends nothing: no line (its own warning says so at Generate).
        self.styled_preview.value = f"<small><b>sent as:</b> {html.escape(sent)}</small>" if sent.strip() else ""

    # ---- size and seed ----
    def _on_size(self) -> None:
        custom = self.resolution.value == CUSTOM_SIZE
        self.width.disabled = self.height.disabled = not custom
        if not custom:
            self.width.value, self.height.value = self.base_size()

    def base_size(self) -> tuple[int, int]:
        """The size the size box chooses (a custom one as typed)."""
        choice = self.resolution.value
        if choice == CUSTOM_SIZE:
            return self.width.value, self.height.value
        if choice == MODEL_SIZE:
            return self._model_size()
        res = self.presets.resolutions[choice]
        return res.width, res.height

    def set_size(self, width: int, height: int) -> None:
        """Choose the model's size or a named one when it is that size, else a custom size."""
        named = [r.name for r in self.presets.resolutions.values() if (r.width, r.height) == (width, height)]
        if (width, height) == self._model_size():
            self.resolution.value = MODEL_SIZE
        elif named:
            self.resolution.value = named[0]
        else:
            self.resolution.value = CUSTOM_SIZE
            self.width.value, self.height.value = width, height

    def _on_seed(self) -> None:
        self.seed.disabled = self.random_seed.value

    def use_seed(self, seed: int) -> None:
        self.random_seed.value = False
        self.seed.value = int(seed)

    # ---- reading and filling ----
    def warnings(self) -> list[str]:
        """What to say when the request is queued (it still runs)."""
        return [w for w in (empty_prompt_warning(self.prompt.value),) if w]

    def fields(self) -> tuple[dict, list[str]]:
        """The request fields the form holds and the adjustments made to them (said to the user and recorded).

        A value equal to the style's or model's default is left as None, so the record says where it came from.
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
                      # Unset while both sampler and schedule are the defaults shown: the style/model pair then runs.
                      schedule_type=None if self.scheduler.value == d.scheduler
                      and self.schedule_type.value == self._default_schedule else self.schedule_type.value,
                      seed=None if self.random_seed.value else self.seed.value)
        if self.resolution.value == CUSTOM_SIZE:
            fields.update(width=self.width.value, height=self.height.value)
        elif self.resolution.value != MODEL_SIZE:
            fields["resolution"] = self.resolution.value
        if self.offers_refiner:
            fields.update(self.refiner_fields.fields())
        return fields, adjustments

    def load(self, fields: dict) -> list[str]:
        """Fill the form from request fields (a reused image, a PNG's parameters); returns what could not be
        loaded, one line each. `model` is not chosen here: the caller chooses it in the model panel."""
        skipped = []
        style = fields.get("style")
        if style is not None:
            if style in self.presets.styles:
                self.style.value = style
            else:
                skipped.append(f"style {style!r} is not one of this lab's styles (kept {self.style.value})")
        if fields.get("prompt") is not None:
            self.prompt.value = fields["prompt"]
        if fields.get("negative_prompt") is not None:
            self.negative.value = form.effective_negative(fields["negative_prompt"],
                                                          self.presets.styles[self.style.value])
        scheduler = fields.get("scheduler")
        if scheduler is not None:
            if scheduler in self.presets.schedulers:
                self.scheduler.value = scheduler
            else:
                skipped.append(f"scheduler {scheduler!r} is not one of this lab's schedulers")
        schedule = fields.get("schedule_type")
        if schedule is not None:
            label = find_label(schedule)
            if label in self.schedule_type.options:
                self.schedule_type.value = label
            else:
                skipped.append(f"schedule type {schedule!r} is not one this lab can make")
        elif scheduler is not None:
            self.schedule_type.value = AUTOMATIC  # a picked sampler without a schedule type: the sampler as it is
        for widget, name in ((self.steps, "steps"), (self.cfg, "cfg")):
            if fields.get(name) is not None:
                widget.value = fields[name]
        if fields.get("width") and fields.get("height"):
            self.set_size(int(fields["width"]), int(fields["height"]))
        if fields.get("seed") is not None:
            self.use_seed(fields["seed"])
        skipped += self._load_refiner(fields)
        return skipped

    def _load_refiner(self, fields: dict) -> list[str]:
        wanted = fields.get("refiner")
        if not self.offers_refiner:
            return [f"refiner {wanted!r} is not used here (only Generate and Sweep run a refiner)"] if wanted else []
        return self.refiner_fields.load(fields)
