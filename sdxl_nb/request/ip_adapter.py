"""A request's IP-Adapter (name, images, scale) validated and resolved to files and hashes; no torch."""

from __future__ import annotations

import math
import os

from sdxl_nb.config.ip_adapters import IpAdapterUse, ip_adapter_use
from sdxl_nb.errors import InputError

MAX_IP_IMAGES = 8
MAX_IP_SCALE = 2.0  # A1111's ControlNet weight slider ends at 2
DEFAULT_IP_SCALE = 1.0  # diffusers' and A1111's default weight


def _image_list(value: object) -> list:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InputError(f"ip_images must be an image path or a list of paths, got {type(value).__name__}")


def resolve_ip_adapter(name: object, images: object, scale: object, notes: list[str], read_image) -> IpAdapterUse | None:
    """The job's IP-Adapter, or None; images without an adapter (or the reverse) are an InputError. `read_image`
    is resolve's init-image check (same limits, same messages)."""
    paths = _image_list(images)
    if name is None:
        if paths:
            raise InputError("ip_images need an IP-Adapter (give ip_adapter / --ip-adapter NAME; see "
                             "`sdxl-nb ip-adapters`)")
        if scale is not None:
            raise InputError("ip_scale applies only with an IP-Adapter (give ip_adapter / --ip-adapter NAME)")
        return None
    if not paths:
        raise InputError(f"IP-Adapter {name!r} needs at least one image (ip_images / --ip-image PATH)")
    if len(paths) > MAX_IP_IMAGES:
        raise InputError(f"{len(paths)} IP-Adapter images; accepted: 1 to {MAX_IP_IMAGES}")
    if scale is None:
        value = DEFAULT_IP_SCALE
        notes.append(f"IP-Adapter scale {value:g} (default)")
    else:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise InputError(f"ip_scale must be a number from 0 to {MAX_IP_SCALE:g}, got {scale!r}")
        value = float(scale)
        if not 0 <= value <= MAX_IP_SCALE:
            raise InputError(f"ip_scale {scale} is out of range; accepted: 0 to {MAX_IP_SCALE:g}")
    checked = []
    for number, path in enumerate(paths, 1):
        image = read_image(path, f"IP-Adapter image {number}" if len(paths) > 1 else "IP-Adapter image")
        checked.append(image)
    return ip_adapter_use(name, tuple(checked), value)
