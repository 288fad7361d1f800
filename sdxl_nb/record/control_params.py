"""A1111 `ControlNet N` parameters, in the sd-webui-controlnet extension's form, from a record's ControlNets."""

from __future__ import annotations


def control_unit_text(unit: dict, width: int, height: int) -> str:
    """`Module: canny, Model: NAME [HASH], Weight: 1.0, ...`: one unit as the extension writes it (the caller quotes)."""
    model = unit.get("model") or {}
    name = str(model.get("name") or "?").rsplit("/", 1)[-1]
    settings = unit.get("settings") or {}
    module = unit.get("preprocessor") or "none"
    parts = [f"Module: {module}", f"Model: {name} [{extension_hash(model)}]",
             f"Weight: {float(unit.get('weight', 1.0))}", f"Resize Mode: {unit.get('resize_mode') or 'Just Resize'}",
             "Low Vram: False", f"Processor Res: {settings.get('processor_res', min(width, height))}"]
    if module == "canny":
        parts += [f"Threshold A: {float(settings.get('low_threshold', 100))}",
                  f"Threshold B: {float(settings.get('high_threshold', 200))}"]
    parts += [f"Guidance Start: {float(unit.get('start', 0.0))}", f"Guidance End: {float(unit.get('end', 1.0))}",
              "Pixel Perfect: False", "Control Mode: Balanced"]
    return ", ".join(parts)


def extension_hash(model: dict) -> str:
    """The hash sd-webui-controlnet writes beside the model name: A1111's short model hash of the weights file
    (scripts/global_state.py update_cn_models -> modules/sd_models.py model_hash; config.checkpoints); the sha256
    prefix where the file is gone (an old record written again)."""
    from sdxl_nb.config.controlnets import ControlNetFile

    try:
        return ControlNetFile(str(model.get("name")), str(model.get("path")), "").short_hash()
    except (OSError, ValueError):
        return str(model.get("sha256") or "")[:8]


def control_fields(record: dict) -> dict:
    """{"ControlNet 0": "...", ...} for the record's ControlNets (none for a job without)."""
    units = record.get("controlnets") or []
    return {f"ControlNet {i}": control_unit_text(unit, record["width"], record["height"])
            for i, unit in enumerate(units) if isinstance(unit, dict)}
