"""A PNG's input images for "Load into": only files in this output folder's inputs/, found by the record's sha256."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from sdxl_nb.config.limits import MAX_INPUT_BYTES

_SHA256 = re.compile(r"[0-9a-f]{64}")
NOT_HERE = "not in this output folder's inputs/"


def find_input(folder: Path, sha256: str | None) -> Path | None:
    """The file inputs/<sha256>.<ext> whose content has that sha256, or None. A path a PNG names is never
    opened: uploads are kept under their sha256 (request.form.save_upload), so the hash alone finds one. Links,
    devices and files past MAX_INPUT_BYTES are passed over unread."""
    from sdxl_nb.record.store import sha256_file

    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return None
    try:
        candidates = sorted(folder.glob(f"{sha256}.*"))
    except OSError:
        return None
    for path in candidates:
        try:
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_INPUT_BYTES and sha256_file(path) == sha256:
                return path
        except OSError:
            continue
    return None


def local_inputs(fields: dict, inputs: dict, out_dir: str | os.PathLike) -> tuple[dict, list[str]]:
    """`fields` with every input image (init, mask, IP-Adapter images, control images) replaced by its file in
    <out_dir>/inputs/, found by the sha256 in `inputs` (PngParameters.inputs); an image not found there is left
    out (a control image with its unit, an init image with img2img) with one line saying so."""
    from sdxl_nb.request.form import INPUTS_DIR

    folder = Path(out_dir) / INPUTS_DIR
    fields, lines = dict(fields), []

    def why(sha256) -> str:
        return NOT_HERE if isinstance(sha256, str) else "the record names no sha256 to find it by"

    for name, label in (("init_image", "init image"), ("mask_image", "mask")):
        if name not in fields:
            continue
        found = find_input(folder, inputs.get(name))
        if found is not None:
            fields[name] = str(found)
            continue
        del fields[name]
        line = f"{label} not loaded: {why(inputs.get(name))}"
        if name == "init_image" and fields.get("mode") in ("img2img", "inpaint"):
            fields["mode"] = "txt2img"
            line += " (txt2img instead)"
        lines.append(line)
    if "ip_images" in fields:
        hashes, kept = list(inputs.get("ip_images") or []), []
        for number, _path in enumerate(fields["ip_images"]):
            sha256 = hashes[number] if number < len(hashes) else None
            found = find_input(folder, sha256)
            if found is None:
                lines.append(f"IP-Adapter image {number + 1} not loaded: {why(sha256)}")
            else:
                kept.append(str(found))
        fields["ip_images"] = kept
    if "controlnets" in fields:
        hashes, kept = list(inputs.get("controlnets") or []), []
        for number, unit in enumerate(fields["controlnets"]):
            sha256 = hashes[number] if number < len(hashes) else None
            found = find_input(folder, sha256)
            if found is None:
                lines.append(f"ControlNet unit {number + 1} ({unit.get('model')}) not loaded: its control image "
                             + ("is " + NOT_HERE if isinstance(sha256, str) else "has no sha256 in the record"))
            else:
                kept.append({**unit, "image": str(found)})
        fields["controlnets"] = kept
    return fields, lines
