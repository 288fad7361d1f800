"""One queued job (what it runs, where it stands) and how its progress and memory verdict read as one line."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdxl_nb.request.memory import MemoryAdvice, gib
from sdxl_nb.request.resolve import GenerationRequest

QUEUED, RUNNING = "queued", "running"
FINAL = ("ok", "interrupted", "failed", "cancelled", "held")  # held: the memory pre-check found it risky


@dataclass(eq=False)
class Job:
    id: int
    kind: str  # "generate", "animate", "sweep", "upscale" or "load"
    model: str
    out_dir: Path
    label: str  # one line for the queue view: what the job is (record.description.summary), its prompt aside
    request: GenerationRequest | None = None  # generate: the request (the panel resubmits it after a memory hold)
    work: Callable[..., Any] | None = None  # every kind but load: runs it, given the backend and the hooks
    chunk_size: int | None = None
    check_memory: bool = False
    owner: object = None  # who submitted it (a panel shows only its own jobs' progress and results)
    notes: tuple[str, ...] = ()  # adjustments the submitter made and told the user about
    prompt: str = ""  # the job's prompt as typed: the queue view shows it cut at a word, whole in its tooltip
    announced: bool = False  # its "queued" event went out: only then may the worker start it (views see it in order)
    status: str = QUEUED
    phase: str | None = None  # while running: "loading" or "generating"
    stage: str | None = None  # the load stage being done ("UNet", "VAE", ...)
    progress: dict | None = None
    result: Any = None  # JobResult, AnimationResult or SweepResult; load: {"model", "load_s", "already_loaded"}
    error: str | None = None  # one line
    memory: MemoryAdvice | None = None  # the pre-check's verdict, when asked for
    engine_start_s: float = 0.0  # seconds this job spent making the kernel's engine (importing torch), if it did
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.status in FINAL

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is over (True) or the timeout passes (False)."""
        return self.done_event.wait(timeout)


def describe_progress(progress: dict) -> tuple[float, str]:
    """(fraction done, "step i/N · elapsed · ETA") for a progress dict from a backend (a sweep adds its cell)."""
    step, total = progress["step"], max(1, progress["total"])
    chunk, chunks = progress.get("chunk", 1), progress.get("chunks", 1)
    all_steps = total * chunks
    done = (chunk - 1) * total + step
    elapsed = progress.get("elapsed", 0.0)
    text = f"step {step}/{total}" + (f" of chunk {chunk}/{chunks}" if chunks > 1 else "") + f" · {elapsed:.1f} s elapsed"
    fraction = done / all_steps
    if "cell" in progress:  # a sweep: the cells before this one are done
        cell, cells = progress["cell"], max(1, progress["cells"])
        text = f"cell {cell}/{cells} · " + text
        fraction = (cell - 1 + fraction) / cells
    elif 0 < done < all_steps:
        text += f" · ETA {elapsed * (all_steps - done) / done:.1f} s"
    return min(1.0, fraction), text


def memory_line(advice: MemoryAdvice) -> str:
    """One line for the panel: the verdict, then the figures (or the advice when risky)."""
    if advice.risky:
        return f"memory check: risky. {advice.message}"
    return (f"memory check: fits; needs about {gib(advice.needed_bytes)} more, {gib(advice.free_bytes)} free "
            f"(estimated peak {gib(advice.estimate.peak_bytes)}, {advice.estimate.said})")
