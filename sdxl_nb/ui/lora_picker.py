"""The LoRA picker: a LoRA (name, size, short hash, fit to the model) and a weight; Insert puts its tag in a prompt box."""

from __future__ import annotations

import html
import math
from collections.abc import Callable

import ipywidgets as w

from sdxl_nb.request.prompt_syntax import with_lora_tag
from sdxl_nb.ui.widgets import set_status


def lora_label(row: dict) -> str:
    """One dropdown line: name, size, A1111 short hash and whether it fits the model; an unusable file is marked."""
    if row.get("usable") is False:
        return f"✗ {row['name']} (unusable)"
    fit = "" if row.get("fits") is None else (", fits" if row["fits"] else ", does not fit")
    return f"{row['name']} ({row['size_bytes'] / 2**20:.1f} MiB, {row.get('short_hash') or '?'}{fit})"


class LoraPicker:
    """A thin view over `sdxl_nb.jobs.networks.lora_listing`: choose a LoRA and a weight, Insert writes
    <lora:NAME:WEIGHT> into `target` (the prompt box), replacing that LoRA's earlier tag. Nothing runs here."""

    def __init__(self, target: w.Textarea | None = None, *, model: str | None = None, backend=None,
                 listing: Callable[[], list[dict]] | None = None, autoload: bool = True):
        from sdxl_nb.jobs.networks import lora_listing

        self.target = target
        self.listing = listing or (lambda: lora_listing(model, backend=backend))
        self.rows: dict[str, dict] = {}
        self.choice = w.Dropdown(description="LoRA", options=[], layout=w.Layout(width="420px"))
        self.weight = w.FloatText(value=0.8, step=0.05, description="Weight", layout=w.Layout(width="160px"))
        self.insert = w.Button(description="Insert tag", icon="plus", tooltip="add <lora:NAME:WEIGHT> to the prompt")
        self.refresh = w.Button(description="Refresh", icon="refresh", tooltip="look for LoRA files again")
        self.info = w.HTML()
        self.status = w.HTML()
        self.insert.on_click(lambda _b: self.insert_tag())
        self.refresh.on_click(lambda _b: self.load())
        self.choice.observe(lambda _c: self._show_info(), "value")
        self.widget = w.VBox([w.HBox([self.choice, self.weight, self.insert, self.refresh]), self.info, self.status])
        if autoload:
            self.load()
        else:  # listing checks each file against the model (torch): a panel that must open light waits for Refresh
            set_status(self.status, "press Refresh to list LoRAs", "idle")

    def load(self) -> None:
        """(Re)list the LoRAs; a listing that fails says why in one line."""
        try:
            rows = self.listing()
        except Exception as exc:  # a broken folder must not break the form
            from sdxl_nb.errors import one_line

            set_status(self.status, f"LoRAs could not be listed: {one_line(exc)}", "error")
            return
        chosen = self.choice.value
        self.rows = {row["name"]: row for row in rows}
        self.choice.options = [(lora_label(row), row["name"]) for row in rows]
        self.choice.value = chosen if chosen in self.rows else (rows[0]["name"] if rows else None)
        set_status(self.status, "" if rows else "no LoRA found (set SDXL_NB_LORAS)", "idle")
        self._show_info()

    def _show_info(self) -> None:
        row = self.rows.get(self.choice.value)
        if row is None:
            self.info.value = ""
            return
        notes = [row["path"], *(row[key] for key in ("problem", "clash") if row.get(key))]
        self.info.value = f"<small>{html.escape(' — '.join(notes))}</small>"

    def insert_tag(self) -> str | None:
        """Write the chosen LoRA's tag into the target; returns the new prompt (None when refused, with a red line)."""
        row = self.rows.get(self.choice.value)
        weight = self.weight.value
        if row is None:
            set_status(self.status, "choose a LoRA first", "error")
            return None
        if not math.isfinite(weight):
            set_status(self.status, f"weight {weight} is not a finite number", "error")
            return None
        if row.get("usable") is False:
            set_status(self.status, f"{row['name']} is unusable: {row['problem']}", "error")
            return None
        if row.get("fits") is False:
            set_status(self.status, f"{row['name']} does not fit this model: {row['problem']}", "error")
            return None
        text = with_lora_tag(self.target.value if self.target is not None else "", row["name"], weight)
        if self.target is not None:
            self.target.value = text
        set_status(self.status, f"added {row['name']} at {weight:g}", "ok")
        return text
