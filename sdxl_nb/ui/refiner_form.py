"""The refiner fields of a request form: refiner, "Switch at" and switch by steps (A1111's Refiner group)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from sdxl_nb.config.registry import find_model, refiner_ids

SHARE = dict(flex="1 1 0%", width="auto", min_width="0")  # two widgets that split a row equally


class RefinerFields:
    """Widgets for GenerationRequest's refiner fields; the rules (ranges, what it runs with) are resolve()'s."""

    def __init__(self, presets: Callable[[], object], models: Callable[[], dict]):
        self._presets, self._models = presets, models
        self.refiner = w.Dropdown(options=self.options(), description="Refiner", layout=w.Layout(**SHARE))
        self.switch = w.FloatSlider(value=0.8, min=0.01, max=1.0, step=0.01, description="Switch at",
                                    readout_format=".2f", continuous_update=False, layout=w.Layout(**SHARE))
        # A1111's option "Refiner switch by sampling steps": the switch as a fraction of the steps, not of the timesteps.
        self.by_steps = w.Checkbox(value=False, description="Switch by steps", indent=False,
                                   layout=w.Layout(width="auto"))
        self.refiner.observe(lambda _c: self._on_refiner(), "value")
        self.refiner.add_class("sdxl-refiner")
        self._on_refiner()
        self.row = w.HBox([self.refiner, self.switch, self.by_steps], layout=w.Layout(width="100%"))

    def options(self) -> list[tuple[str, str]]:
        """"none", then every refiner; one that is not in the cache is marked (picking it is refused in one line)."""
        options = [("none", "")]
        models = self._models()
        for name in refiner_ids(models):
            cached = models[name].source == "embedded" or find_model(name, self._presets()).available
            options.append((name if cached else f"✗ {name} (not available)", name))
        return options

    def _on_refiner(self) -> None:
        self.switch.disabled = self.by_steps.disabled = not self.refiner.value

    def summary(self) -> str | None:
        """The section title's account of it ("tiny-sdxl-refiner from 0.80"), None when off."""
        if not self.refiner.value:
            return None
        return f"{self.refiner.value} from {self.switch.value:.2f}" + (" of the steps" if self.by_steps.value else "")

    def watched(self) -> tuple[w.Widget, ...]:
        return (self.refiner, self.switch, self.by_steps)

    def fields(self) -> dict:
        if not self.refiner.value:
            return {}
        fields = dict(refiner=self.refiner.value, refiner_switch=round(self.switch.value, 2))
        if self.by_steps.value:
            fields["refiner_switch_by"] = "steps"
        return fields

    def load(self, fields: dict) -> list[str]:
        """Fill from request fields (a reused record or PNG); returns what could not be loaded."""
        wanted = fields.get("refiner")
        if not wanted:
            self.refiner.value = ""
            return []
        if wanted not in dict(self.refiner.options).values():
            return [f"refiner {wanted!r} is not one of this lab's refiners (kept {self.refiner.value or 'none'})"]
        self.refiner.value = wanted
        switch = fields.get("refiner_switch")
        if isinstance(switch, (int, float)) and 0 < switch <= 1:
            self.switch.value = float(switch)
        self.by_steps.value = fields.get("refiner_switch_by") == "steps"
        return []
