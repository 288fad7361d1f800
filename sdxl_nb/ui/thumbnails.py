"""Small previews of a picker's input images (init, mask, control, references), updated and cleared with it."""

from __future__ import annotations

import io

import ipywidgets as w

THUMB = 96  # a preview's longest side, in CSS pixels


def thumbnail_png(data: bytes, label: str) -> bytes | None:
    """PNG bytes of the image fitted into THUMB x THUMB (never sent at full size), or None when the bytes are no
    readable image (the request says why in one line when it is made; a bomb is refused from its header)."""
    from PIL import Image

    from sdxl_nb.errors import InputError
    from sdxl_nb.request.resolve import decode_image
    from sdxl_nb.ui.image_view import png_bytes

    try:
        decode_image(data, label)
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except InputError:
        return None
    image.thumbnail((THUMB, THUMB))
    return png_bytes(image)


class Thumbnails:
    """The previews of zero or more images in one row (class sdxl-thumbs; each image sdxl-thumb)."""

    def __init__(self, label: str, *classes: str):
        self.label = label
        self.widget = w.HBox(layout=w.Layout(flex="0 0 auto", align_items="center"))
        self.widget.add_class("sdxl-thumbs")
        for name in classes:
            self.widget.add_class(name)
        self.show([])

    def show(self, images: list[bytes]) -> None:
        """Preview these images (an empty list clears the row)."""
        from sdxl_nb.ui.image_view import image_box, show_image

        children = []
        for number, data in enumerate(images, 1):
            png = thumbnail_png(data, f"{self.label} {number}" if len(images) > 1 else self.label)
            if png is None:
                unreadable = w.HTML(f"<small>✗ {self.label}: not a readable image</small>")
                unreadable.add_class("sdxl-thumb-unreadable")
                children.append(unreadable)
                continue
            image = image_box("sdxl-thumb")
            show_image(image, png, box=THUMB, smallest=THUMB // 2)
            children.append(image)
        self.widget.children = children
        self.widget.layout.display = None if children else "none"

    @property
    def count(self) -> int:
        return sum(isinstance(child, w.Image) for child in self.widget.children)

    def follow(self, upload: w.FileUpload) -> Thumbnails:
        """Show the upload's files now and after every change (cleared when it is emptied)."""
        upload.observe(lambda _change: self.show(upload_bytes(upload)), "value")
        self.show(upload_bytes(upload))
        return self


def upload_bytes(upload: w.FileUpload) -> list[bytes]:
    """The bytes of each file a FileUpload holds, in order."""
    return [bytes(item["content"]) for item in upload.value]
