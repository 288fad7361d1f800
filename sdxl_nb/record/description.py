"""One description of a job record, as ordered (label, value) rows naming every setting it holds; no torch.

The gallery's Info and Compare, the results' job info, PNG Info and the Queue's labels all read a job through it,
so a setting added to the record is shown everywhere once it is described here."""

from __future__ import annotations

from sdxl_nb.record import description_values as v
from sdxl_nb.record.description_kinds import KIND_ROWS, frame_rows, outcome_rows, output_size
from sdxl_nb.record.field_labels import FIELD_LABELS, label
from sdxl_nb.record.metadata import a1111_sampler

Row = tuple[str, str]

SIZE = "Size"
# Rows that say which job it was and how it went rather than what it ran with: Compare leaves them out.
# "Conditioning" counts tokens: it follows the prompts, whose difference is shown.
_NOT_SETTINGS = frozenset({"Status", "Job", "Conditioning"})


def describe(record: dict) -> list[Row]:
    """Every setting of a job record (or of an image's record chunk), then how it went and what it saved."""
    return settings_rows(record) + outcome_rows(record)


def settings_rows(record: dict) -> list[Row]:
    """What the job ran with, in the order a person reads a job: what it is, the model and sampling, the prompts,
    the inputs, the networks, the refiner and hires passes, the guides, then the kind's own settings."""
    if not isinstance(record, dict):
        return []
    rows: list[Row] = []

    def add(name: str, value) -> None:
        if value:
            rows.append((name, value))

    mode = v.text(record.get("mode"))
    kind = KIND_ROWS.get(mode)
    add(FIELD_LABELS["mode"], mode)
    add("Status", v.text(record.get("status")))
    add("Job", v.short_hash(record.get("job_id"), 12))
    if mode == "upscale":  # no sampler, prompt or seed: the upscaler, its scale, the source and the size made
        for row in kind(record):
            add(*row)
        return rows
    _model_rows(record, add)
    _sampling_rows(record, add)
    _prompt_rows(record, add)
    _input_rows(record, add)
    _network_rows(record, add)
    _refiner_rows(record, add)
    _hires_rows(record, add)
    _guide_rows(record, add)
    for row in (kind(record) if kind else []) + frame_rows(record) + _extra_rows(record):
        add(*row)
    return rows


def _model_rows(record: dict, add) -> None:
    model = v.part(record, "model")
    vae = v.part(model, "vae")
    add(FIELD_LABELS["model"], v.joined([v.text(model.get("id")), v.short_hash(model.get("revision")) and
                                         f"revision {v.short_hash(model.get('revision'))}", v.text(model.get("dtype")),
                                         "inpainting UNet" if model.get("inpainting") is True else None,
                                         v.text(vae.get("id")) and f"VAE {vae['id']}"]))
    add("Model hash", v.short_hash(model.get("sha256")))
    add("Model file", v.text(model.get("path")))
    backend = v.part(record, "backend")
    add("Backend", v.generic(backend) if backend else None)


def _sampling_rows(record: dict, add) -> None:
    scheduler = v.part(record, "scheduler")
    preset, cls = v.text(scheduler.get("name")), v.text(scheduler.get("class"))
    schedule = v.text(record.get("schedule_type"))
    if cls:
        config = scheduler.get("config") if isinstance(scheduler.get("config"), dict) else {}
        sampler, schedule = a1111_sampler(cls, config, schedule)
        add(FIELD_LABELS["scheduler"], sampler + (f" (preset {preset})" if preset and preset != sampler else ""))
    else:
        add(FIELD_LABELS["scheduler"], preset)
    add(FIELD_LABELS["schedule_type"], schedule)
    add(FIELD_LABELS["steps"], v.number(record.get("steps")))
    add(FIELD_LABELS["cfg"], v.number(record.get("cfg")))
    image = v.part(record, "image")  # an image's record chunk: that image's seed
    seeds = [v.number(seed) for seed in v.items(record, "seeds")]
    seed = v.number(image.get("seed")) if "seed" in image else v.number(record.get("seed"))
    add(FIELD_LABELS["seed"], seed)
    if len(seeds) > 1 and "seed" not in image and all(seeds):
        saved = [seed for seed in (v.number(entry.get("seed")) for entry in v.items(record, "images")
                                   if isinstance(entry, dict)) if seed]
        # A stopped or failed job planned more images than it saved: say which seeds made an image.
        unsaved = record.get("status") in ("interrupted", "failed") and len(saved) < len(seeds)
        add("Seeds", ", ".join(seeds) + (f" (saved: {', '.join(saved) or 'none'})" if unsaved else ""))
    first_pass = v.size((record.get("width"), record.get("height")))
    made = output_size(record)
    add(SIZE, made + (f" (first pass {first_pass})" if first_pass and made != first_pass else "") if made
        else first_pass)
    if record.get("mode") not in ("animate", "sweep"):  # their frames and cells are counted in their own rows
        add(FIELD_LABELS["batch"], v.number(record.get("batch")))
    style = v.part(record, "style")
    add(FIELD_LABELS["style"], v.joined([v.text(style.get("name")), v.text(style.get("hash")) and
                                         f"(hash {style['hash']})"], " "))


def _prompt_rows(record: dict, add) -> None:
    image = v.part(record, "image")
    prompt = v.text(record.get("prompt"))
    add(FIELD_LABELS["prompt"], prompt)
    sent = v.text(image.get("styled_prompt")) or v.text(record.get("styled_prompt"))
    add("Prompt sent", sent if sent != prompt else None)
    negative = v.text(record.get("negative_prompt"))
    add(FIELD_LABELS["negative_prompt"], negative)
    sent_negative = v.text(record.get("effective_negative_prompt"))
    add("Negative sent", sent_negative if sent_negative != negative else None)
    conditioning = v.part(record, "conditioning")
    weights = [f"{v.text(pair[0]) or ''}: {v.number(pair[1]) or 'BREAK'}" if pair[1] is not None else "BREAK"
               for role in ("prompt", "negative_prompt") for pair in v.items(v.part(conditioning, role), "weights")
               if isinstance(pair, list) and len(pair) == 2]
    add("Prompt weights", ", ".join(weights) or None)
    tokens = [f"{name} {v.number(part.get('tokens'))} tokens in {v.number(part.get('chunks'))} chunk(s)"
              for role, name in (("prompt", "prompt"), ("negative_prompt", "negative"))
              if v.number((part := v.part(conditioning, role)).get("tokens")) and v.number(part.get("chunks"))]
    sent_as = v.text(conditioning.get("sent_as"))
    add("Conditioning", v.joined([*tokens, sent_as and f"sent as {sent_as}"]))
    embeddings = [v.joined([v.named(entry.get("name"), entry.get("sha256")),
                            v.number(entry.get("vectors")) and f"{entry['vectors']} vectors"], " ")
                  for entry in v.items(record, "embeddings") if isinstance(entry, dict)]
    add("Embeddings", ", ".join(e for e in embeddings if e) or None)


def _input_rows(record: dict, add) -> None:
    add(FIELD_LABELS["strength"], v.number(record.get("strength")))
    add(FIELD_LABELS["init_image"], v.input_image(record.get("init_image")))
    add(FIELD_LABELS["mask_image"], v.input_image(record.get("mask_image")))
    inpaint = v.part(record, "inpaint")
    add(FIELD_LABELS["mask_blur"], v.number(inpaint.get("mask_blur")) and f"{inpaint['mask_blur']} px")
    add(FIELD_LABELS["masked_content"], v.text(inpaint.get("masked_content")))
    add(FIELD_LABELS["inpaint_area"], v.text(inpaint.get("inpaint_area")))
    if inpaint.get("inpaint_area") == "Only masked":
        add(FIELD_LABELS["only_masked_padding"],
            v.number(inpaint.get("only_masked_padding")) and f"{inpaint['only_masked_padding']} px")


def _network_rows(record: dict, add) -> None:
    loras = [v.joined([v.text(entry.get("name")), v.number(entry.get("weight")),
                       v.short_hash(entry.get("a1111_hash") or entry.get("sha256"), 12) and
                       f"[{v.short_hash(entry.get('a1111_hash') or entry.get('sha256'), 12)}]"], " ")
             for entry in v.items(record, "loras") if isinstance(entry, dict)]
    add(FIELD_LABELS["loras"], ", ".join(lora for lora in loras if lora) or None)


def _refiner_rows(record: dict, add) -> None:
    refiner = v.part(record, "refiner")
    name = v.text(refiner.get("id"))
    if name is None:
        return
    add(FIELD_LABELS["refiner"], v.joined([v.named(name, refiner.get("hash")), v.short_hash(refiner.get("revision"))
                                           and f"revision {v.short_hash(refiner.get('revision'))}"]))
    split = v.part(refiner, "split")
    steps = (f"base {split['base_steps']} steps, refiner {split['refiner_steps']}"
             if v.number(split.get("base_steps")) and v.number(split.get("refiner_steps")) else None)
    by = "sampling steps" if refiner.get("switch_by") == "steps" else v.text(refiner.get("switch_by"))
    add(FIELD_LABELS["refiner_switch"], v.joined([v.number(refiner.get("switch")), by and f"by {by}", steps,
                                                  v.text(split.get("pass")) and f"{split['pass']} pass"]))


def _hires_rows(record: dict, add) -> None:
    hires = v.part(record, "hires")
    if not hires:
        return
    resize = v.size(hires.get("resize"))
    if resize:
        add(FIELD_LABELS["hires_resize"], resize)
    else:
        add(FIELD_LABELS["hires_scale"], v.number(hires.get("scale")))
    upscaler = v.part(hires, "upscaler")
    add(FIELD_LABELS["hires_upscaler"], v.joined([v.named(upscaler.get("name"), upscaler.get("sha256")),
                                                  "model" if upscaler.get("kind") == "model" else None]))
    add(FIELD_LABELS["hires_steps"], v.number(hires.get("steps")))
    add(FIELD_LABELS["hires_denoise"], v.number(hires.get("denoise")))


def _guide_rows(record: dict, add) -> None:
    for index, unit in enumerate(v.items(record, "controlnets")):
        if isinstance(unit, dict):
            add(f"{FIELD_LABELS['controlnets']} {index}", control_unit(unit))
    adapter = v.part(record, "ip_adapter")
    if v.text(adapter.get("name")):
        encoder = v.part(adapter, "image_encoder")
        add(FIELD_LABELS["ip_adapter"], v.joined([v.named(adapter["name"], adapter.get("a1111_hash")
                                                          or adapter.get("sha256")),
                                                  v.text(encoder.get("folder")) and f"encoder {encoder['folder']}"]))
        add(FIELD_LABELS["ip_scale"], v.number(adapter.get("scale")))
        add(FIELD_LABELS["ip_images"], ", ".join(image for entry in v.items(record, "ip_images")
                                                 if (image := v.input_image(entry))) or None)


def control_unit(unit: dict) -> str | None:
    """One ControlNet unit in a line: model, preprocessor and its settings, weight, the steps it guides, its image."""
    model = v.part(unit, "model")
    settings = v.part(unit, "settings")
    thresholds = [v.number(settings.get(key)) for key in ("low_threshold", "high_threshold")]
    preprocessor = v.text(unit.get("preprocessor"))
    start, end = v.number(unit.get("start")), v.number(unit.get("end"))
    return v.joined([v.text(model.get("name")),
                     preprocessor and preprocessor + (f" (thresholds {thresholds[0]}, {thresholds[1]})"
                                                      if all(thresholds) else ""),
                     v.number(unit.get("weight")) and f"weight {v.number(unit['weight'])}",
                     start and end and f"from {start} to {end}", v.text(unit.get("resize_mode")),
                     v.input_image(unit.get("image")) and f"image {v.input_image(unit['image'])}"])


# Record keys described above or in description_kinds, or bookkeeping no one reads as a setting.
_DESCRIBED = frozenset({
    "schema", "job_id", "mode", "status", "error", "started_at", "finished_at", "model", "device", "scheduler",
    "schedule_type", "style", "prompt", "negative_prompt", "styled_prompt", "effective_negative_prompt", "steps",
    "cfg", "width", "height", "batch", "chunk_size", "seed", "seeds", "strength", "init_image", "mask_image",
    "images", "timings", "peak_memory_bytes", "events", "warnings", "notes", "env", "animation", "frames", "grid",
    "animations", "loras", "embeddings", "conditioning", "refiner", "hires", "ip_adapter", "ip_images", "controlnets",
    "control_maps", "inpaint", "memory_check", "backend", "upscale", "sweep", "scenario", "distributed", "image"})


def _extra_rows(record: dict) -> list[Row]:
    """Fields a caller merged into the record (api.generate(extra=...)): named as given, values in words."""
    return [(key.replace("_", " ").capitalize(), shown) for key, value in record.items()
            if isinstance(key, str) and key.strip() and key not in _DESCRIBED and (shown := v.generic(value))]


def differences(first: dict, second: dict) -> list[tuple[str, str, str]]:
    """(label, first's value, second's) for each setting two records do not share, in description order."""
    return row_differences(settings_rows(first), settings_rows(second))


def row_differences(first: list[Row], second: list[Row]) -> list[tuple[str, str, str]]:
    """(label, first's value, second's) for each label whose value differs ("(none)" where a side lacks it)."""
    a = {name: value for name, value in first if name not in _NOT_SETTINGS}
    b = {name: value for name, value in second if name not in _NOT_SETTINGS}
    order = list(a) + [name for name in b if name not in a]
    return [(name, a.get(name, "(none)"), b.get(name, "(none)")) for name in order if a.get(name) != b.get(name)]


def image_settings(record: dict | None, fields: dict, notes: dict) -> list[Row]:
    """What made an image: its record's settings where it has our record, else what a PNG reader found (an A1111
    or ComfyUI image: the request fields, then the notes on what has no field here)."""
    if isinstance(record, dict):
        return settings_rows(record)
    return field_rows(fields) + [(label(key), shown) for key, value in notes.items() if (shown := v.generic(value))]


def field_rows(fields: dict) -> list[Row]:
    """Request fields read from a PNG (png_params) as rows: labelled, values in words."""
    return [(label(key), shown) for key, value in fields.items() if (shown := field_value(key, value))]


def field_value(key: str, value) -> str | None:
    """One request field's value in words: a ControlNet unit as a line, a size as WxH, a list joined."""
    if key == "controlnets" and isinstance(value, list):
        return "; ".join(unit for entry in value if isinstance(entry, dict)
                         and (unit := control_unit({**entry, "model": {"name": entry.get("model")},
                                                   "image": {"path": entry.get("image")},
                                                   "settings": entry}))) or None
    if key == "hires_resize":
        return v.size(value)
    if key == "loras" and isinstance(value, list):
        return v.generic([item if isinstance(item, str) else ":".join(map(str, item)) for item in value
                          if isinstance(item, (str, list, tuple))])
    return v.generic(value)


def summary(record: dict) -> str:
    """One line for a job (the Queue's row): what it is, the model, the size it makes, how many, the steps and what
    it adds to the model. The prompt is left out: the caller shows it cut at a word boundary."""
    rows = dict(settings_rows(record))
    mode = rows.get(FIELD_LABELS["mode"], "job")
    if mode == "upscale":
        return v.joined([mode, v.text(v.part(v.part(record, "upscale"), "upscaler").get("name")),
                         rows.get("Scale") and f"x{rows['Scale']}", rows.get(SIZE)]) or mode
    model = v.part(record, "model")
    refiner, hires, adapter = (v.part(record, key) for key in ("refiner", "hires", "ip_adapter"))
    loras = [f"{entry['name']}:{v.number(entry.get('weight'))}" for entry in v.items(record, "loras")
             if isinstance(entry, dict) and v.text(entry.get("name")) and v.number(entry.get("weight"))]
    units = [v.text(v.part(unit, "model").get("name")) for unit in v.items(record, "controlnets")]
    # A sweep's line names what every cell shares: a field an axis varies is said by the axis alone.
    varied = {v.text(v.part(v.part(record, "sweep"), axis).get("field")) for axis in ("x", "y")}
    steps = None if "steps" in varied else rows.get(FIELD_LABELS["steps"])
    size = None if varied & {"width", "height", "resolution", "hires_upscaler"} else rows.get(SIZE)
    axes = " × ".join(rows[name] for name in ("Sweep X", "Sweep Y") if name in rows)
    return v.joined([
        f"animate {rows['Animation']}" if "Animation" in rows else f"sweep {axes}" if mode == "sweep" else mode,
        None if "model" in varied else v.text(model.get("id")), size,
        f"batch {rows[FIELD_LABELS['batch']]}" if mode != "animate" and FIELD_LABELS["batch"] in rows else None,
        steps and f"{steps} steps",
        loras and "LoRA " + ", ".join(loras),
        v.text(refiner.get("id")) and f"refiner {refiner['id']} from {v.number(refiner.get('switch'))}",
        (second := v.joined([rows.get(FIELD_LABELS["hires_resize"]) or (rows.get(FIELD_LABELS["hires_scale"]) and
                                                                        f"x{rows[FIELD_LABELS['hires_scale']]}"),
                             v.text(v.part(hires, "upscaler").get("name"))], " ")) and f"hires {second}",
        any(units) and "ControlNet " + ", ".join(unit for unit in units if unit),
        v.text(adapter.get("name")) and f"IP-Adapter {adapter['name']}"]) or mode


def planned_record(resolved, model_id: str) -> dict:
    """The record a resolved request will start from (before it runs), for describing a job still in the queue."""
    from sdxl_nb.record.job_record import base_record

    record = base_record(resolved, job_id="", started_at="", model={"id": model_id}, device={}, env={})
    if resolved.refiner is not None:  # the pipeline writes the full entry (revision, split) when the job runs
        record["refiner"] = {"id": resolved.refiner.id, "switch": resolved.refiner_switch,
                             "switch_by": getattr(resolved, "refiner_switch_by", None) or "timestep"}
    return record
