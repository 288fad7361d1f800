"""An image upload button with a thumbnail of the picked file beside it, and a button that removes it."""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as w

from sdxl_nb.ui.image_view import clear_image, image_box, show_image
from sdxl_nb.ui.uploads import upload_value
from sdxl_nb.ui.widgets import button, show

PREVIEW_BOX = 128  # the thumbnail's longest side: small images are scaled up to it, large ones fitted


class ImageUpload:
    """`.upload` is the FileUpload; `.content()` the picked file's (name, bytes), or None when there is none."""

    def __init__(self, description: str, tooltip: str = ""):
        self.upload = w.FileUpload(accept="image/*", multiple=False, description=description, tooltip=tooltip,
                                   layout=w.Layout(width="auto", flex="0 0 auto"))
        self.thumb = image_box("sdxl-upload-thumb")
        self.note = w.HTML()  # the picked file's name and size, or why it shows no thumbnail
        self.remove = button("", self.clear, "", "remove this image", icon="times",
                             layout=w.Layout(width="auto", flex="0 0 auto"))
        self.widget = w.HBox([self.upload, self.thumb, self.note, self.remove],
                             layout=w.Layout(align_items="center", flex_flow="row wrap"))
        self.widget.add_class("sdxl-upload")
        self.upload.observe(lambda _change: self._show(), "value")
        self._show()

    def content(self) -> tuple[str, bytes] | None:
        if not self.upload.value:
            return None
        item = self.upload.value[0]
        return item["name"], bytes(item["content"])

    def use(self, path: str | Path) -> None:
        """Make a saved image the picked file (a reused image)."""
        self.upload.value = upload_value(path)

    def clear(self) -> None:
        self.upload.value = ()

    def _show(self) -> None:
        picked = self.content()
        show(self.remove, picked is not None)
        if picked is None:
            clear_image(self.thumb)
            self.note.value = ""
            return
        from PIL import Image, UnidentifiedImageError

        name, data = picked
        try:
            show_image(self.thumb, data, PREVIEW_BOX, smallest=PREVIEW_BOX)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            clear_image(self.thumb)  # said in one line, and refused, when the job is submitted
            self.note.value = f"<small>{html.escape(name)}: not a readable image</small>"
            return
        self.note.value = f"<small>{html.escape(name)}</small>"
