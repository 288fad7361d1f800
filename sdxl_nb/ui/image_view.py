"""Images shown at a sensible size: large ones fitted, small ones scaled up by whole factors without blur."""

from __future__ import annotations

import io

import ipywidgets as w

from sdxl_nb.record.store import encode_png

THUMB_BOX = 256  # a gallery cell's longest side, in CSS pixels
VIEW_BOX = 512  # a single result (grid, animation, viewer) when not shown at full size
SMALLEST = 256  # images smaller than this are scaled up (by a whole factor, drawn pixelated)
PIXELATED = "sdxl-pixelated"
# The page's style rules for images: scaled-up images keep hard pixel edges instead of a blur; a thumbnail that
# can be picked is covered by a transparent button (ipywidgets images take no clicks), the picked one outlined.
CSS = (f"<style>.{PIXELATED} {{ image-rendering: pixelated; }} "
       ".sdxl-image { object-fit: contain; flex: 0 0 auto; align-self: flex-start; } "
       ".sdxl-code textarea { white-space: pre; overflow-wrap: normal; overflow-x: auto; font-size: 12px; } "
       ".sdxl-clickable-thumb { position: relative; } "
       ".sdxl-show-large { position: absolute !important; top: 0; left: 0; width: 100% !important; "
       "height: 100% !important; margin: 0 !important; opacity: 0; cursor: zoom-in; } "
       ".sdxl-shown-large .sdxl-clickable-thumb img { outline: 3px solid #1976d2; outline-offset: -3px; }</style>")


def display_size(width: int, height: int, box: int = VIEW_BOX, smallest: int = SMALLEST) -> tuple[int, int]:
    """The on-screen size of a width x height image, aspect kept: fitted into box x box when larger; when its
    longest side is below `smallest`, scaled up by the whole factor that reaches `smallest` (never past box)."""
    longest = max(width, height, 1)
    if longest > box:
        scale = box / longest
    elif longest < smallest:
        scale = max(1, min(-(-smallest // longest), box // longest))
    else:
        scale = 1
    return max(1, round(width * scale)), max(1, round(height * scale))


def image_format(data: bytes) -> tuple[str, tuple[int, int]]:
    """(widget format, pixel size) of encoded image bytes (PNG, GIF, WebP, JPEG)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return (image.format or "png").lower(), image.size


def image_box(*classes: str) -> w.Image:
    """An empty image widget, hidden until it has an image (an empty one would show a broken-image icon)."""
    widget = w.Image(format="png", layout=w.Layout(display="none"))
    widget.add_class("sdxl-image")
    for name in classes:
        widget.add_class(name)
    return widget


def show_image(widget: w.Image, data: bytes, box: int = VIEW_BOX, smallest: int = SMALLEST,
               full_size: bool = False, fit: bool = False) -> tuple[int, int]:
    """Put encoded image bytes in `widget` at its display size (its own aspect ratio); returns that size.

    `full_size`: at its own pixel size. `fit` (and `full_size`): narrowed to its column when that is narrower,
    the height following the width so the aspect ratio is kept."""
    fmt, (width, height) = image_format(data)
    shown = (width, height) if full_size else display_size(width, height, box, smallest)
    widget.format = fmt
    widget.value = data
    fitted = fit or full_size
    widget.layout.width = f"{shown[0]}px"
    widget.layout.height = "auto" if fitted else f"{shown[1]}px"
    widget.layout.max_width = "100%" if fitted else None
    widget.layout.display = None
    if shown[0] > width:
        widget.add_class(PIXELATED)
    else:
        widget.remove_class(PIXELATED)
    return shown


def png_bytes(image) -> bytes:
    # The saved files' fast settings: PIL's default level 6 took half a second for a 1024x1024 image, which
    # every finished image in a panel would wait for.
    return encode_png(image)


def show_pil(widget: w.Image, image, box: int = VIEW_BOX, smallest: int = SMALLEST, fit: bool = False
             ) -> tuple[int, int]:
    return show_image(widget, png_bytes(image), box, smallest, fit=fit)


def clear_image(widget: w.Image) -> None:
    widget.value = b""
    widget.layout.display = "none"


def css() -> w.HTML:
    """The page style the image views rely on (include it once in a panel; repeats are harmless)."""
    widget = w.HTML(CSS, layout=w.Layout(display="none"))
    widget.add_class("sdxl-css")
    return widget
