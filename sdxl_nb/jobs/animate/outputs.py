"""Animation outputs: file names, frame PNG metadata, the labelled frame grid, animated GIF and WebP bytes."""

from __future__ import annotations

import io
from datetime import datetime

from PIL import Image

from sdxl_nb.outputs.grid import contact_sheet
from sdxl_nb.record.job_record import png_info
from sdxl_nb.record.naming import slugify, timestamp

WEBP_QUALITY = 90
LOOP_FOREVER = 0


def grid_name(moment: datetime, prompt: str) -> str:
    return f"{timestamp(moment)}_{slugify(prompt)}_grid.png"


def animation_name(moment: datetime, prompt: str, extension: str) -> str:
    return f"{timestamp(moment)}_{slugify(prompt)}.{extension}"


def frame_caption(frame: dict, total: int) -> str:
    """`frame 3/8`, `seed 42` (`-> 7` when slerping), `t 0.286` when interpolating."""
    lines = [f"frame {frame['index'] + 1}/{total}",
             f"seed {frame['seed']}" + ("" if frame.get("seed_end") is None else f" -> {frame['seed_end']}")]
    if frame.get("t") is not None:
        lines.append(f"t {frame['t']:.3f}")
    return "\n".join(lines)


def frame_grid(images: list[Image.Image], frames: list[dict], total: int) -> Image.Image:
    """The contact sheet: every finished frame with its number, seed and t."""
    return contact_sheet(images, [frame_caption(frame, total) for frame in frames])


def frame_png_info(record: dict, frame: dict, path: str):
    """The frame's PNG metadata: A1111 `parameters` with this frame's prompt and seed, plus the `sdxl_nb` chunk.

    A slerp frame is A1111's "variation seed" (noise slerped toward another seed's by a strength);
    prompt travel has no A1111 equivalent, so its ends and t are written as extra fields.
    """
    extra: dict = {"Frame": f"{frame['index'] + 1} of {record['batch']}"}
    if frame.get("seed_end") is not None:
        extra.update({"Variation seed": frame["seed_end"], "Variation seed strength": f"{frame['t']:.6g}"})
    if frame.get("styled_prompt_end") is not None:
        extra.update({"Prompt travel end": frame["styled_prompt_end"], "Prompt travel t": f"{frame['t']:.6g}"})
    chunk_frame = {key: frame[key] for key in ("t", "seed_end", "prompt", "styled_prompt", "prompt_end",
                                                "styled_prompt_end", "call") if key in frame}
    return png_info(record, frame["index"], frame["seed"], path, prompt=frame["styled_prompt"], extra_fields=extra,
                    image=chunk_frame)


def frame_durations(fps: float) -> dict[str, int]:
    """Milliseconds per frame as each format stores it: GIF counts whole 1/100 s, WebP whole ms."""
    exact = 1000.0 / fps
    return {"gif": max(10, round(exact / 10) * 10), "webp": max(1, round(exact))}


def encode_animation(images: list[Image.Image], order: list[int], fmt: str, duration_ms: int) -> bytes:
    """An endlessly looping GIF or WebP of images shown in `order` (indices into images)."""
    sequence = [images[i].convert("RGB") for i in order]
    buffer = io.BytesIO()
    options = {"save_all": True, "append_images": sequence[1:], "duration": duration_ms, "loop": LOOP_FOREVER}
    if fmt == "gif":
        sequence[0].save(buffer, format="GIF", disposal=1, **options)
    elif fmt == "webp":
        sequence[0].save(buffer, format="WEBP", quality=WEBP_QUALITY, method=4, **options)
    else:
        raise ValueError(f"unknown animation format {fmt!r}; accepted: gif, webp")
    return buffer.getvalue()


def count_frames(data: bytes) -> int:
    """Frames in an animation file as a reader sees them (encoders merge identical neighbours)."""
    with Image.open(io.BytesIO(data)) as image:
        return getattr(image, "n_frames", 1)
