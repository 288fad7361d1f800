"""Mask painting on the init image (ipycanvas): brush, eraser, size, clear, invert, feather; the mask is request.mask's."""

from __future__ import annotations

import io
import os
from pathlib import Path

import ipywidgets as w
import numpy as np

from sdxl_nb.errors import InputError
from sdxl_nb.request.form import save_upload
from sdxl_nb.request.mask import MAX_FEATHER, MaskPaint, Stroke, coverage, load_base, save_mask
from sdxl_nb.ui.image_view import display_size
from sdxl_nb.ui.widgets import button

PAINT_BOX = 512  # the canvas's longest side in screen pixels; small init images are scaled up to it
OVERLAY = (255, 40, 40)  # repainted area: red at half opacity over the image
OVERLAY_ALPHA = 0.5


class MaskPainter:
    """A canvas showing the init image with the mask over it in red; the strokes are in the image's pixels."""

    def __init__(self):
        from ipycanvas import MultiCanvas

        self.canvas = MultiCanvas(2, width=PAINT_BOX, height=PAINT_BOX)  # 0: the image, 1: the mask in red
        self.canvas.add_class("sdxl-mask-canvas")
        self.brush = w.IntSlider(value=24, min=2, max=160, description="Brush", tooltip="brush diameter, screen px")
        self.tool = w.ToggleButtons(options=["paint", "erase"], value="paint", description="Tool",
                                    style={"button_width": "70px"})
        self.invert = w.Checkbox(value=False, description="invert (paint what to keep)", indent=False,
                                 layout=w.Layout(width="auto"))
        self.feather = w.IntSlider(value=0, min=0, max=MAX_FEATHER, description="Feather",
                                   tooltip="soft edge: blur radius in image px")
        self.clear_button = button("Clear", self.clear, "", "remove every stroke (and an uploaded mask)")
        self.note = w.HTML()
        self.note.add_class("sdxl-mask-note")
        self.paint: MaskPaint | None = None
        self.base_bytes: bytes | None = None  # an uploaded mask, kept as uploaded while untouched
        self.image = None  # the init image (PIL RGB)
        self.scale = 1.0  # screen px per image px
        self._stroke: list[tuple[float, float]] | None = None  # the stroke being drawn, in image px
        self.canvas.on_mouse_down(self.press)
        self.canvas.on_mouse_move(self.drag)
        self.canvas.on_mouse_up(lambda _x, _y: self.release())
        self.canvas.on_mouse_out(lambda _x, _y: self.release())
        self.canvas.on_client_ready(self.redraw)  # a canvas shown after drawing gets the whole picture again
        self.invert.observe(lambda _c: self._changed(), "value")
        self.feather.observe(lambda _c: self._changed(), "value")
        self.widget = w.VBox([
            w.HTML("<small>Paint where the image is repainted (red); the rest is kept.</small>"),
            w.HBox([self.tool, self.brush]), w.HBox([self.feather, self.invert, self.clear_button]),
            self.canvas, self.note])
        self.widget.add_class("sdxl-mask-painter")

    # ---- inputs ----
    def set_image(self, data: bytes | None) -> None:
        """The init image to paint on (None: nothing to paint on yet); strokes of another image are dropped."""
        from PIL import Image, UnidentifiedImageError

        from sdxl_nb.request.resolve import decode_image

        self.image, self.paint = None, None
        try:
            if data is not None:
                decode_image(data, "init image")  # a bomb is refused from its header, never decoded here
                with Image.open(io.BytesIO(data)) as image:
                    self.image = image.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            pass  # the request says so in one line when it is made
        if self.image is None:
            self.note.value = "<small>choose an init image (a readable one) to paint its mask</small>"
            return
        width, height = display_size(*self.image.size, box=PAINT_BOX, smallest=PAINT_BOX // 2)
        self.scale = width / self.image.width
        self.canvas.width, self.canvas.height = width, height
        # Shown at its own pixel size: a canvas stretched to the page would be blurred and its strokes offset.
        self.canvas.layout.width, self.canvas.layout.height = f"{width}px", f"{height}px"
        self.paint = MaskPaint(self.image.size, inverted=self.invert.value, feather=self.feather.value)
        self.set_base(self.base_bytes)

    def set_base(self, data: bytes | None) -> None:
        """An uploaded mask to start from (white = repaint); strokes then edit it."""
        self.base_bytes = data
        if self.paint is None:
            return
        try:
            self.paint.base = None if data is None else load_base(data, self.image.size)
        except (OSError, SyntaxError, ValueError):  # not an image (or a bomb): the request refuses it in one line
            self.paint.base = None
        self.redraw()

    # ---- the brush (ipycanvas mouse events, in screen px) ----
    def press(self, x: float, y: float) -> None:
        if self.paint is None:
            return
        self._stroke = [(x / self.scale, y / self.scale)]
        self._dab(x, y, x, y)

    def drag(self, x: float, y: float) -> None:
        if self._stroke is None:
            return
        last = self._stroke[-1]
        self._stroke.append((x / self.scale, y / self.scale))
        self._dab(last[0] * self.scale, last[1] * self.scale, x, y)

    def release(self) -> None:
        if self._stroke is None:
            return
        erase = self.tool.value == "erase"
        self.paint.strokes.append(Stroke(tuple(self._stroke), self.brush.value / 2 / self.scale, erase))
        self._stroke = None
        self.redraw()  # the whole mask again: even strokes, the feather, the coverage line

    def _dab(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Show the stroke at once (the exact mask follows on release)."""
        layer = self.canvas[1]
        erase = self.tool.value == "erase"
        layer.global_composite_operation = "destination-out" if erase else "source-over"
        layer.stroke_style = f"rgba({OVERLAY[0]},{OVERLAY[1]},{OVERLAY[2]},{1.0 if erase else OVERLAY_ALPHA})"
        layer.line_width, layer.line_cap = self.brush.value, "round"
        layer.stroke_line(x0, y0, x1, y1)
        layer.global_composite_operation = "source-over"

    # ---- the mask ----
    def clear(self) -> None:
        self.base_bytes = None
        if self.paint is not None:
            self.paint.strokes.clear()
            self.paint.base = None
            self.redraw()

    def _changed(self) -> None:
        if self.paint is not None:
            self.paint.inverted, self.paint.feather = self.invert.value, self.feather.value
            self.redraw()

    def redraw(self) -> None:
        if self.paint is None:
            return
        from ipycanvas import hold_canvas
        from PIL import Image

        width, height = self.canvas.width, self.canvas.height
        resample = Image.Resampling.NEAREST if width > self.image.width else Image.Resampling.LANCZOS
        shown = np.asarray(self.image.resize((width, height), resample))
        mask = self.paint.render()
        alpha = np.asarray(mask.resize((width, height), resample), dtype=np.float32) * OVERLAY_ALPHA
        overlay = np.zeros((height, width, 4), dtype=np.uint8)
        overlay[..., :3] = OVERLAY
        overlay[..., 3] = alpha.astype(np.uint8)
        with hold_canvas():
            self.canvas[0].clear()
            self.canvas[0].put_image_data(shown, 0, 0)
            self.canvas[1].clear()
            self.canvas[1].put_image_data(overlay, 0, 0)
        share = coverage(mask)
        self.note.value = (f"<small>{share:.0%} of the image will be repainted"
                           + (f" · feather {self.paint.feather} px" if self.paint.feather else "")
                           + (" · inverted" if self.paint.inverted else "") + "</small>")

    def mask(self):
        """The mask (PIL "L", the init image's size), or None when nothing was painted or uploaded."""
        return None if self.paint is None or self.paint.blank else self.paint.render()

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Keep the mask under inputs/ by its hash: an untouched upload as uploaded, else the painted mask."""
        if self.paint is None:
            raise InputError("inpaint needs an init image to paint the mask on")
        if self.base_bytes is not None and self.paint.base is None:
            return save_upload(self.base_bytes, out_dir, "mask image")  # unreadable: save_upload says so
        if self.paint.blank:
            raise InputError("inpaint needs a mask: paint where to repaint on the init image (or upload a mask)")
        if self.paint.untouched_base():
            return save_upload(self.base_bytes, out_dir, "mask image")
        return save_mask(self.paint.render(), out_dir)
