"""RunOutput: what any engine (local, replicas, ComfyUI) hands back to api.generate; no torch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunOutput:
    images: list  # (index in batch, seed, PIL image), in batch order
    status: str  # "ok" or "interrupted"
    generate_s: float
    peak_memory_bytes: int | None
    scheduler: dict
    events: list[str]
    warnings: list[str]
    chunk_size: int | None = None  # images per pipeline call at the end (auto-tuning may lower it)
    adjustments: dict | None = None  # what auto-tuning changed ({"chunks", "vae_slicing", ...}); None: nothing
    dropped: list[dict] = field(default_factory=list)  # images not saved (NaN/black): index, seed, problem
    error: str | None = None  # set when some images failed and others were kept (replicas)
