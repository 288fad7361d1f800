"""Style dropdowns: every panel's list comes from load_presets() and follows each style saved or deleted."""

from __future__ import annotations

import ipywidgets as w

from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.user_presets import on_change
from sdxl_nb.ui.widgets import labelled_options


def style_options(presets: Presets) -> list[tuple[str, str]]:
    """Dropdown options "name — description" -> name, in the presets' order."""
    return labelled_options([(style.name, style.description) for style in presets.styles.values()])


def fill_styles(dropdown: w.Dropdown, presets: Presets) -> None:
    """Set the options; the choice is kept while it still exists, else the presets' default style."""
    current = dropdown.value
    dropdown.options = style_options(presets)  # resets the value: set it again below
    dropdown.value = current if current in presets.styles else presets.defaults.style


def style_dropdown(**kwargs) -> w.Dropdown:
    """A style dropdown holding the presets' styles now and after every change."""
    dropdown = w.Dropdown(**kwargs)
    fill_styles(dropdown, load_presets())
    on_change(lambda: fill_styles(dropdown, load_presets()))
    return dropdown
