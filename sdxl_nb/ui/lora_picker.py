"""The LoRA picker: a LoRA (name, size, short hash, fit to the model) and a weight; Insert puts its tag in a prompt box."""

from __future__ import annotations

import html
import math
from collections.abc import Callable

import ipywidgets as w

from sdxl_nb.errors import InputError
from sdxl_nb.request.prompt_syntax import lora_tags, with_lora_tag
from sdxl_nb.ui.listed_picker import ListedPicker
from sdxl_nb.ui.widgets import set_status


def lora_label(row: dict) -> str:
    """One dropdown line: name, size, A1111 short hash and whether it fits the model; an unusable file is marked.
    A quick listing has no hash and no fit yet: only what it knows is shown."""
    if row.get("usable") is False:
        return f"✗ {row['name']} (unusable)"
    parts = [f"{row['size_bytes'] / 2**20:.1f} MiB", row.get("short_hash")]
    if row.get("fits") is not None:
        parts.append("fits" if row["fits"] else "does not fit")
    return f"{row['name']} ({', '.join(part for part in parts if part)})"


def prompt_loras(text: str) -> str | None:
    """The LoRAs a prompt's tags apply ("a 0.7, b 1"), "" for none, None when a tag is not understood."""
    try:
        tags = lora_tags(text)
    except InputError:
        return None
    return ", ".join(f"{tag.name} {tag.weight:g}" for tag in tags)


class LoraPicker(ListedPicker):
    """A thin view over `sdxl_nb.jobs.networks.lora_listing`: choose a LoRA and a weight, Insert writes
    <lora:NAME:WEIGHT> into `target` (the prompt box), replacing that LoRA's earlier tag. Nothing runs here.

    It opens filled by `start_listing` (quick: no fit check) when given, else by `listing`; Refresh runs `listing`,
    which checks each LoRA against the model. The status line is derived from the prompt and the listing each time
    either changes: the LoRAs the prompt's tags apply, else what the listing found; a refusal stays until the prompt
    or the choice changes."""

    NOUN, SETTING, DEMO = "LoRA", "SDXL_NB_LORAS", "the demo LoRA"

    def __init__(self, target: w.Textarea | None = None, *, model: str | None = None, backend=None,
                 listing: Callable[[], list[dict]] | None = None,
                 start_listing: Callable[[], list[dict]] | None = None, autoload: bool = True):
        from sdxl_nb.jobs.networks import lora_listing

        self.target = target
        self._start(listing or (lambda: lora_listing(model, backend=backend)), start_listing)
        self.choice = w.Dropdown(description="LoRA", options=[], layout=w.Layout(width="420px"))
        self.weight = w.FloatText(value=0.8, step=0.05, description="Weight", layout=w.Layout(width="160px"))
        self.insert = w.Button(description="Insert tag", icon="plus", tooltip="add <lora:NAME:WEIGHT> to the prompt")
        self.refresh = w.Button(description="Refresh", icon="refresh",
                                tooltip="look for LoRA files again and check which fit the model")
        self.info = w.HTML()
        self.status = w.HTML()
        self.status.add_class("sdxl-lora-status")
        self._refusal: str | None = None  # the last Insert refused, until the prompt or the choice changes
        self.insert.on_click(lambda _b: self.insert_tag())
        self.refresh.on_click(lambda _b: self.load())
        self.choice.observe(lambda _c: self._on_choice(), "value")
        if target is not None:
            target.observe(lambda _c: self._forget_refusal(), "value")
        self.widget = w.VBox([w.HBox([self.choice, self.weight, self.insert, self.refresh]), self.info, self.status])
        if autoload:
            self.load(quick=start_listing is not None)
        else:
            self._listing_line = ("press Refresh to list LoRAs", "idle")
            self.show_status()

    def _fill(self, rows: list[dict], chosen) -> None:
        self.choice.options = [(lora_label(row), row["name"]) for row in rows]
        self.choice.value = chosen if chosen in self.rows else (rows[0]["name"] if rows else None)

    def _redraw(self) -> None:
        self._show_info()
        self.show_status()

    def _on_choice(self) -> None:
        self._refusal = None
        self._show_info()
        self.show_status()

    def _forget_refusal(self) -> None:
        self._refusal = None
        self.show_status()

    def _show_info(self) -> None:
        row = self.rows.get(self.choice.value)
        if row is None:
            self.info.value = ""
            return
        notes = [row["path"], *(row[key] for key in ("problem", "clash") if row.get(key))]
        self.info.value = f"<small>{html.escape(' — '.join(notes))}</small>"

    def show_status(self) -> None:
        """The line under the picker, from the current state only."""
        if self._refusal:
            set_status(self.status, self._refusal, "error")
            return
        applied = prompt_loras(self.target.value) if self.target is not None else ""
        if applied is None:
            set_status(self.status, "a <lora:...> tag in the prompt is not understood (Generate says which)", "warning")
        elif applied:
            set_status(self.status, f"in the prompt: {applied}", "ok")
        else:
            set_status(self.status, *self._listing_line)

    def insert_tag(self) -> str | None:
        """Write the chosen LoRA's tag into the target; returns the new prompt (None when refused, with a red line)."""
        refusal = self._refused()
        if refusal:
            self._refusal = refusal
            self.show_status()
            return None
        row = self.rows[self.choice.value]
        text = with_lora_tag(self.target.value if self.target is not None else "", row["name"], self.weight.value)
        if self.target is not None:
            self.target.value = text  # the status line follows the prompt: it now names this LoRA
        return text

    def _refused(self) -> str | None:
        row = self.rows.get(self.choice.value)
        weight = self.weight.value
        if row is None:
            return "choose a LoRA first"
        if not math.isfinite(weight):
            return f"weight {weight} is not a finite number"
        if row.get("usable") is False:
            return f"{row['name']} is unusable: {row['problem']}"
        if row.get("fits") is False:
            return f"{row['name']} does not fit this model: {row['problem']}"
        if self.target is not None and prompt_loras(self.target.value) is None:
            return "a <lora:...> tag in the prompt is not understood: correct it first"
        return None
