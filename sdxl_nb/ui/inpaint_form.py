"""The Generate tab's inpaint settings: mask blur, masked content, inpaint area, padding (A1111's, inpaint only)."""

from __future__ import annotations

import ipywidgets as w

from sdxl_nb.request.inpaint import DEFAULT_MASK_BLUR, DEFAULT_PADDING, FIELDS, INPAINT_AREAS, MASKED_CONTENT

NUMBER = dict(width="200px")


class InpaintFields:
    """Widgets for GenerationRequest's inpaint fields; the rules (ranges, choices) are resolve()'s."""

    def __init__(self):
        # Plain number boxes: a bounded box would clamp silently; resolve() names the accepted range instead.
        self.mask_blur = w.IntText(value=DEFAULT_MASK_BLUR, description="Mask blur", layout=w.Layout(**NUMBER))
        self.masked_content = w.Dropdown(options=list(MASKED_CONTENT), value="original", description="Masked content",
                                         style={"description_width": "initial"}, layout=w.Layout(width="260px"))
        self.inpaint_area = w.ToggleButtons(options=list(INPAINT_AREAS), value="Whole picture",
                                            description="Inpaint area", style={"button_width": "130px"})
        self.padding = w.IntText(value=DEFAULT_PADDING, description="Only masked padding, pixels",
                                 style={"description_width": "initial"}, layout=w.Layout(width="260px"))
        self.widget = w.VBox([w.HBox([self.mask_blur, self.masked_content]), w.HBox([self.inpaint_area, self.padding])])
        self.widget.add_class("sdxl-inpaint")
        self.inpaint_area.observe(lambda _c: self._show(), "value")
        self._show()

    def _show(self) -> None:
        self.padding.layout.display = None if self.inpaint_area.value == "Only masked" else "none"

    def summary(self) -> str:
        """The inpaint settings in a few words for the section title ("blur 4, original, Whole picture")."""
        area = self.inpaint_area.value
        if area == "Only masked":
            area = f"only masked + {self.padding.value} px"
        return f"blur {self.mask_blur.value}, {self.masked_content.value}, {area}"

    def watched(self) -> tuple[w.Widget, ...]:
        return (self.mask_blur, self.masked_content, self.inpaint_area, self.padding)

    def fields(self) -> dict:
        return dict(zip(FIELDS, (self.mask_blur.value, self.masked_content.value, self.inpaint_area.value,
                                 self.padding.value), strict=True))

    def load(self, fields: dict) -> list[str]:
        """Fill from request fields (a reused record or PNG); returns what could not be loaded."""
        skipped = []
        for widget, name, choices in ((self.mask_blur, "mask_blur", None), (self.padding, "only_masked_padding", None),
                                      (self.masked_content, "masked_content", MASKED_CONTENT),
                                      (self.inpaint_area, "inpaint_area", INPAINT_AREAS)):
            value = fields.get(name)
            if value is None:
                continue
            if choices is not None and value not in choices:
                skipped.append(f"{name.replace('_', ' ')} {value!r} is not one of {', '.join(choices)} "
                               f"(kept {widget.value})")
            else:
                widget.value = value
        return skipped
