"""An image file a job reads (init image, mask, IP-Adapter reference): its path, content hash and size; no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputImage:
    path: str
    sha256: str
    size: tuple[int, int]
