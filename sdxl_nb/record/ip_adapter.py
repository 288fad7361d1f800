"""The IP-Adapter's record fields and its A1111 `parameters` entry (a ControlNet extension unit); no torch."""

from __future__ import annotations

# A1111's ControlNet extension names IP-Adapter preprocessors by the image encoder they run.
_MODULES = {"image_encoder": "ip-adapter_clip_sdxl", "models/image_encoder": "ip-adapter_clip_sdxl_plus_vith"}


def ip_adapter_record(r) -> dict:
    """The record's `ip_adapter` (weights, encoder, scale) and `ip_images` (inputs, checked like init images);
    nothing for a job without an adapter, so other records keep their fields."""
    if r.ip_adapter is None:
        return {}
    ip = r.ip_adapter
    return {"ip_adapter": ip.record(), "ip_images": [{"path": image.path, "sha256": image.sha256,
                                                      "size": list(image.size)} for image in ip.images]}


def ip_adapter_fields(record: dict) -> dict:
    """`ControlNet N: "Module: ..., Model: NAME [HASH], Weight: W, ..."` as the extension writes an IP-Adapter unit,
    numbered after the job's ControlNet units."""
    ip = record.get("ip_adapter")
    if not isinstance(ip, dict):
        return {}
    unit = len(record.get("controlnets") or [])
    module = _MODULES.get((ip.get("image_encoder") or {}).get("folder"), "ip-adapter_clip_sdxl")
    name = str(ip["name"]).replace(",", "").replace(":", "")
    text = (f"Module: {module}, Model: {name} [{ip.get('a1111_hash') or ip['sha256'][:8]}], "
            f"Weight: {float(ip['scale'])}, Resize Mode: Crop and Resize, Guidance Start: 0.0, Guidance End: 1.0, "
            f"Control Mode: Balanced")
    return {f"ControlNet {unit}": text}
