"""The description rows each kind of job adds (animate, sweep, upscale, a batch scenario) and how a job went."""

from __future__ import annotations

from sdxl_nb.record import description_values as v
from sdxl_nb.record.field_labels import label

Row = tuple[str, str]


def output_size(record: dict) -> str | None:
    """The size of the images the job saved: an upscale's result, a hires job's second pass, else the size asked."""
    upscale = v.part(record, "upscale")
    if record.get("mode") == "upscale":
        return v.size((upscale.get("width"), upscale.get("height"))) or v.size((record.get("width"),
                                                                                 record.get("height")))
    hires = v.part(record, "hires")
    return (v.size((hires.get("width"), hires.get("height"))) if hires else None) or v.size(
        (record.get("width"), record.get("height")))


def upscale_rows(record: dict) -> list[Row]:
    """An upscale job is what it is: the upscaler, the scale, the source image and the size it made."""
    upscale = v.part(record, "upscale")
    upscaler = v.part(upscale, "upscaler")
    source = v.part(record, "init_image")
    source_size = v.size(upscale.get("source_size")) or v.size(source.get("size"))
    return [("Upscaler", v.joined([v.named(upscaler.get("name"), upscaler.get("sha256")),
                                   "model" if upscaler.get("kind") == "model" else None])),
            ("Scale", v.number(upscale.get("scale"))),
            ("Source image", v.joined([v.text(source.get("path")), source_size], " · ")),
            ("Size", v.joined([output_size(record), source_size and f"from {source_size}"], " ")),
            ("Upscaled from", _source_note(record))]


def _source_note(record: dict) -> str | None:
    notes = [note for note in v.items(record, "notes") if v.text(note)]
    return notes[0].removeprefix("upscaled from ") if notes and notes[0].startswith("upscaled from ") else None


def animate_rows(record: dict) -> list[Row]:
    animation = v.part(record, "animation")
    mode, source = v.text(animation.get("mode")), v.text(animation.get("source"))
    fps = v.number(animation.get("fps"))
    t = [shown for value in v.items(animation, "t") if (shown := v.number(round(value, 4) if isinstance(
        value, float) else value))]
    return [("Animation", v.joined([mode and mode + (f" from {source}" if source else ""),
                                    v.number(animation.get("frames")) and f"{animation['frames']} frames",
                                    fps and f"{fps} fps", "ping-pong" if animation.get("ping_pong") is True else None])),
            ("Seed end", v.number(animation.get("seed_end"))),
            ("Prompt end", v.text(animation.get("prompt_end"))),
            ("Prompt end sent", v.text(animation.get("styled_prompt_end"))
             if animation.get("styled_prompt_end") != animation.get("prompt_end") else None),
            ("Interpolation", v.text(animation.get("schedule"))),
            ("Frame t", ", ".join(t) or None),
            ("Variation", v.number(animation.get("variation"))),
            ("Motion phrases per frame", v.number(animation.get("phrases_per_frame"))),
            ("Frames per call", v.number(animation.get("batch_size")))]


def frame_rows(record: dict) -> list[Row]:
    """An animation frame's own record chunk: which frame, its blend and its own prompt."""
    image = v.part(record, "image")
    index = image.get("index")
    if record.get("mode") != "animate" or not v.number(index) or not isinstance(index, int) or index < 0:
        return []
    frames = v.number(v.part(record, "animation").get("frames")) or v.number(record.get("batch"))
    t = image.get("t")
    return [("Frame", v.joined([f"{image['index'] + 1}" + (f" of {frames}" if frames else ""),
                                v.number(t) and f"t {v.number(round(t, 4) if isinstance(t, float) else t)}",
                                v.number(image.get("seed_end")) and f"toward seed {image['seed_end']}"])),
            ("Frame prompt", v.text(image.get("prompt")))]


def sweep_rows(record: dict) -> list[Row]:
    """A sweep cell names its place in the grid; the sweep's own record names its axes and cells."""
    sweep = v.part(record, "sweep")
    if not sweep:
        return []
    rows = []
    for axis, values_key in (("x", "x_values"), ("y", "y_values")):
        entry = v.part(sweep, axis)
        name = v.text(entry.get("field"))
        if name is None:
            continue
        values = v.joined((v.generic(value) for value in v.items(sweep, values_key)), ", ")
        place = v.generic(entry.get("value")) if "value" in entry else None
        rows.append((f"Sweep {axis.upper()}", f"{label(name)} = {place}" + (f" (of {values})" if values else "")
                     if place else f"{label(name)}: {values}" if values else label(name)))
    cells = v.items(sweep, "cells")
    done = sum(1 for cell in cells if isinstance(cell, dict) and cell.get("status") == "ok")
    rows += [("Sweep", v.joined([v.text(sweep.get("id")) and f"id {sweep['id']}",
                                 cells and f"{done} of {len(cells)} cells ok"])),
             ("Sweep errors", "; ".join(e for e in v.items(sweep, "errors") if v.text(e)) or None)]
    return rows


def scenario_rows(record: dict) -> list[Row]:
    """A batch file's scenario, and where a distributed batch ran it."""
    scenario = v.part(record, "scenario")
    distributed = v.part(record, "distributed")
    return [("Scenario", v.joined([v.text(scenario.get("name")),
                                   v.number(scenario.get("index")) and f"#{scenario['index'] + 1}"
                                   if isinstance(scenario.get("index"), int) else None,
                                   v.text(scenario.get("batch_id")) and f"batch {scenario['batch_id']}"])),
            ("Distributed", v.generic(distributed) if distributed else None)]


def generate_rows(record: dict) -> list[Row]:
    return sweep_rows(record) + scenario_rows(record)


KIND_ROWS = {"upscale": upscale_rows, "animate": lambda r: animate_rows(r) + scenario_rows(r), "sweep": generate_rows,
             "txt2img": generate_rows, "img2img": generate_rows, "inpaint": generate_rows}


def outcome_rows(record: dict) -> list[Row]:
    """How the job went and what it left: error, times, memory, the files saved, warnings and notes."""
    if not isinstance(record, dict):
        return []
    timings = v.part(record, "timings")
    device = v.part(record, "device")
    memory = v.part(record, "memory_check")
    saved = [path for entry in v.items(record, "images") if isinstance(entry, dict)
             and (path := v.text(entry.get("path")))]
    made = [v.text(v.part(record, "grid").get("path"))]
    made += [v.text(entry.get("path")) for key in ("animations", "control_maps") for entry in v.items(record, key)
             if isinstance(entry, dict)]
    rows = [("Error", v.text(record.get("error"))),
            ("Started", v.text(record.get("started_at"))),
            ("Device", v.joined([v.text(device.get("type")), v.text(device.get("name"))])),
            ("Timings", v.joined(f"{key.removesuffix('_s')} {shown}" for key, value in timings.items()
                                 if (shown := v.seconds(value)))),
            ("Peak memory", v.gib(record.get("peak_memory_bytes"))),
            ("Memory check", v.joined(["risky" if memory.get("risky") is True else "fits" if memory else None,
                                       v.gib(memory.get("estimate_bytes")) and
                                       f"estimated {v.gib(memory['estimate_bytes'])}"])),
            ("Saved", "\n".join(saved) or None),
            ("Also saved", "\n".join(path for path in made if path) or None),
            ("Warnings", "\n".join(w for w in v.items(record, "warnings") if v.text(w)) or None),
            ("Notes", "\n".join(n for n in v.items(record, "notes") if v.text(n)) or None)]
    return [(name, value) for name, value in rows if value]
