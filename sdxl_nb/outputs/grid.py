"""Labelled image grids with Pillow: contact sheets (a caption under each cell) and X/Y grids (axis headers)."""

from __future__ import annotations

import math
import textwrap

from PIL import Image, ImageDraw, ImageFont

MAX_CELL = 384  # cells are thumbnails: a 16-frame sheet of 1024 px frames would otherwise be 64 megapixels
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
EMPTY = (230, 230, 230)  # a cell whose image is missing (stopped or failed job)
GAP = 4


def _font(cell_width: int) -> ImageFont.ImageFont:
    # Pillow's bundled font at a size that scales with the cell: readable on 64 px and 1024 px frames alike.
    return ImageFont.load_default(size=max(9, min(22, cell_width // 10)))


def _cell_size(images: list[Image.Image | None], max_cell: int) -> tuple[int, int]:
    sizes = [image.size for image in images if image is not None] or [(max_cell, max_cell)]
    width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
    scale = min(1.0, max_cell / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _thumbnail(image: Image.Image | None, size: tuple[int, int]) -> Image.Image:
    if image is None:
        return Image.new("RGB", size, EMPTY)
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _wrap(text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """Lines of text that fit `width` pixels (long words are cut, never drawn past the cell)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        chars = max(1, len(paragraph))
        while chars > 1 and any(font.getlength(line) > width for line in textwrap.wrap(paragraph, chars) or [""]):
            chars -= 1
        lines += textwrap.wrap(paragraph, chars, break_long_words=True) or [""]
    return lines


def _line_height(font: ImageFont.ImageFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent + 1


def _draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], box: tuple[int, int, int, int], font) -> None:
    """Centre lines of text in box (left, top, width, height)."""
    left, top, width, height = box
    step = _line_height(font)
    y = top + max(0, (height - step * len(lines)) // 2)
    for line in lines:
        draw.text((left + (width - font.getlength(line)) / 2, y), line, fill=INK, font=font)
        y += step


def contact_sheet(images: list[Image.Image | None], captions: list[str], columns: int | None = None,
                  max_cell: int = MAX_CELL) -> Image.Image:
    """Images in rows of `columns` (default: a near-square layout), each with its caption lines underneath."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    if not images:
        raise ValueError("a contact sheet needs at least one image")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    cell_w, cell_h = _cell_size(images, max_cell)
    font = _font(cell_w)
    wrapped = [_wrap(caption, font, cell_w) for caption in captions]
    caption_h = max(len(lines) for lines in wrapped) * _line_height(font) + GAP
    sheet = Image.new("RGB", (columns * (cell_w + GAP) + GAP, rows * (cell_h + caption_h + GAP) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for number, (image, lines) in enumerate(zip(images, wrapped, strict=True)):
        left = GAP + (number % columns) * (cell_w + GAP)
        top = GAP + (number // columns) * (cell_h + caption_h + GAP)
        sheet.paste(_thumbnail(image, (cell_w, cell_h)), (left, top))
        _draw_lines(draw, lines, (left, top + cell_h, cell_w, caption_h), font)
    return sheet


def xy_grid(cells: dict[tuple[int, int], Image.Image | None], x_title: str, x_labels: list[str],
            y_title: str | None = None, y_labels: list[str] | None = None, max_cell: int = MAX_CELL,
            notes: dict[tuple[int, int], str] | None = None) -> Image.Image:
    """A grid with one column per X value and one row per Y value; headers name the axis and each value.

    cells maps (x index, y index) to an image; a missing key or None draws an empty cell. `notes` maps cells to
    one line drawn under the image (a metric); without notes the grid is the same as ever.
    """
    y_labels = y_labels or [""]
    images = [cells.get((x, y)) for y in range(len(y_labels)) for x in range(len(x_labels))]
    cell_w, cell_h = _cell_size(images, max_cell)
    font = _font(cell_w)
    title_font = _font(cell_w + cell_w // 3)
    column_lines = [_wrap(label, font, cell_w) for label in x_labels]
    header_h = max(len(lines) for lines in column_lines) * _line_height(font) + GAP
    title_h = _line_height(title_font) + GAP
    has_rows = y_title is not None
    row_w = max(cell_w // 2, 64) if has_rows else 0
    row_lines = [_wrap(label, font, row_w) for label in y_labels]
    note_h = _line_height(font) if notes else 0
    width = row_w + GAP + len(x_labels) * (cell_w + GAP)
    height = title_h + header_h + len(y_labels) * (cell_h + note_h + GAP) + GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title = f"X: {x_title}" + (f"    Y: {y_title}" if has_rows else "")
    _draw_lines(draw, _wrap(title, title_font, width - 2 * GAP)[:1], (GAP, 0, width - 2 * GAP, title_h), title_font)
    for x, lines in enumerate(column_lines):
        _draw_lines(draw, lines, (row_w + GAP + x * (cell_w + GAP), title_h, cell_w, header_h), font)
    for y, lines in enumerate(row_lines):
        top = title_h + header_h + y * (cell_h + note_h + GAP)
        if has_rows:
            _draw_lines(draw, lines, (GAP, top, row_w - GAP, cell_h), font)
        for x in range(len(x_labels)):
            left = row_w + GAP + x * (cell_w + GAP)
            sheet.paste(_thumbnail(cells.get((x, y)), (cell_w, cell_h)), (left, top))
            if notes and (x, y) in notes:
                _draw_lines(draw, _wrap(notes[(x, y)], font, cell_w)[:1], (left, top + cell_h, cell_w, note_h), font)
    return sheet
