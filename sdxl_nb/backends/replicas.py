"""Replicas: one copy of the model per device, a job's batch split across them in parallel threads.

Image i keeps seed + i whichever replica draws it, and the images come back in batch order, so a
job on replicas records the same seeds as on one device. Off unless asked for (`enable_replicas`,
`ReplicaEngine`, or `--replicas` on the command line). Torch stays inside sdxl_nb.backends.local.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sdxl_nb.backends.base import RunOutput
from sdxl_nb.errors import GenerationError, InputError, one_line


def split_indices(batch: int, parts: int) -> list[list[int]]:
    """Contiguous blocks of batch indices, sizes differing by at most one; empty blocks dropped."""
    size, extra = divmod(batch, parts)
    blocks, start = [], 0
    for part in range(parts):
        end = start + size + (1 if part < extra else 0)
        blocks.append(list(range(start, end)))
        start = end
    return [block for block in blocks if block]


def device_label(device: str) -> str:
    """"GPU 1" for cuda:1 (what the loading status says), the device itself otherwise."""
    if device.startswith("cuda"):
        return f"GPU {device.partition(':')[2] or '0'}"
    return device


def parse_devices(text: str) -> list[str]:
    """"cuda:0,cuda:1" or "all" (every visible GPU) -> a list of devices; bad text is an InputError."""
    if text.strip() == "all":
        from sdxl_nb.backends.local.placement import visible_devices

        devices = visible_devices()
        if not devices:
            raise InputError("--replicas all: no CUDA device is visible; name devices instead (e.g. cpu,cpu)")
        return devices
    devices = [part.strip() for part in text.split(",") if part.strip()]
    bad = [d for d in devices if not (d == "cpu" or d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit()))]
    if bad or not devices:
        raise InputError(f"replica devices {text!r} not understood; accepted: all, or a comma list such as "
                         "cuda:0,cuda:1 (cpu for tests)")
    return devices


@dataclass
class ReplicaModel:
    """The model loaded on every replica; attributes mirror the first replica's LoadedModel."""

    parts: list  # [(engine, LoadedModel)] of the replicas that loaded
    load_s: float
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name):  # revision, dtype_name, vae, pipe, info...: the first replica's
        if name == "parts":
            raise AttributeError(name)
        return getattr(self.parts[0][1], name)


class ReplicaEngine:
    """Engine-compatible: pass it as `engine=` to sdxl_nb.generate, or make it the kernel's engine."""

    def __init__(self, devices: Sequence[str] | None = None, *, engines: Sequence | None = None, options=None):
        if engines is None:
            if not devices:
                raise InputError("replicas need at least one device")
            from sdxl_nb.backends.local import Engine

            engines = [Engine(device=device, options=options) for device in devices]
        self.engines = list(engines)
        self.device = "+".join(engine.device for engine in self.engines)
        self.lock = threading.RLock()
        self.loaded: dict[str, ReplicaModel] = {}

    def load(self, info, on_stage: Callable[[str], None] | None = None) -> ReplicaModel:
        """Load on each device in turn ("loading on GPU 0..."); a device that fails is left out, loudly."""
        stage = on_stage or (lambda _name: None)
        with self.lock:
            if info.id in self.loaded:
                return self.loaded[info.id]
            started = time.perf_counter()
            parts, warnings, last_error = [], [], None
            for engine in self.engines:
                label = device_label(engine.device)
                stage(f"loading on {label}...")
                try:
                    parts.append((engine, engine.load(info, on_stage=lambda name, label=label: stage(f"{label}: {name}"))))
                except Exception as exc:  # out of memory on one GPU must not cost the others
                    last_error = exc
                    warnings.append(f"replica {engine.device} could not load {info.id}: {one_line(exc)}; "
                                    "running without it")
            if not parts:
                raise last_error
            loaded = ReplicaModel(parts=parts, load_s=time.perf_counter() - started,
                                  warnings=warnings + list(parts[0][1].warnings))
            self.loaded[info.id] = loaded
            return loaded

    @staticmethod
    def prompt_warnings(loaded: ReplicaModel, *texts):
        engine, first = loaded.parts[0]
        return engine.prompt_warnings(first, *texts)

    def memory_facts(self, loaded: ReplicaModel) -> dict:
        """The first replica's facts: each replica runs at most the whole batch, so this is conservative."""
        engine, first = loaded.parts[0]
        return engine.memory_facts(first)

    def run(self, resolved, loaded: ReplicaModel, *, on_progress=None, should_stop=None, chunk_size=None,
            auto_tune=None) -> RunOutput:
        """Each replica generates its block of the batch in its own thread; results merge in batch order."""
        with self.lock:
            blocks = split_indices(resolved.batch, len(loaded.parts))
            report = _merged_progress(on_progress, resolved.batch, len(blocks))
            results: list = [None] * len(blocks)
            started = time.perf_counter()

            def work(slot: int) -> None:
                engine, part = loaded.parts[slot]
                try:
                    results[slot] = engine.run(resolved, part, indices=blocks[slot], chunk_size=chunk_size,
                                               should_stop=should_stop, auto_tune=auto_tune,
                                               on_progress=lambda p, slot=slot: report(slot, p))
                except BaseException as exc:  # kept and reported; the other replicas' images survive
                    results[slot] = exc

            threads = [threading.Thread(target=work, args=(slot,), name=f"replica-{slot}", daemon=True)
                       for slot in range(len(blocks))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return self._merge(loaded, blocks, results, time.perf_counter() - started)

    def _merge(self, loaded: ReplicaModel, blocks, results, generate_s: float) -> RunOutput:
        images, events, warnings, failures, peaks, statuses, scheduler = [], [], [], [], [], [], None
        for (engine, _part), block, result in zip(loaded.parts, blocks, results, strict=False):
            where = f"{engine.device} (images {_span(block)})"
            if isinstance(result, BaseException):
                failures.append(f"replica {where} failed: {one_line(result)}")
                continue
            images += result.images
            events += [f"{engine.device}: {event}" for event in result.events]
            warnings += result.warnings
            statuses.append(result.status)
            scheduler = scheduler or result.scheduler
            if result.peak_memory_bytes is not None:
                peaks.append(result.peak_memory_bytes)
        if not statuses:
            raise GenerationError("; ".join(failures))
        images.sort(key=lambda item: item[0])
        events.insert(0, "ran on {} replica(s): {}".format(
            len(blocks), ", ".join(f"{engine.device} images {_span(block)}"
                                   for (engine, _), block in zip(loaded.parts, blocks, strict=False))))
        status = "failed" if failures else "interrupted" if "interrupted" in statuses else "ok"
        if failures:
            missing = sorted(set(range(sum(map(len, blocks)))) - {index for index, _seed, _image in images})
            failures.append(f"images {_span(missing)} missing; the others were saved")
        return RunOutput(images=images, status=status, generate_s=generate_s,
                                peak_memory_bytes=max(peaks) if peaks else None, scheduler=scheduler,
                                events=events, warnings=warnings, error="; ".join(failures) or None)

    def device_record(self) -> dict:
        records = [engine.device_record() for engine in self.engines]
        return {"type": records[0]["type"], "name": ", ".join(r["name"] for r in records),
                "replicas": [{"device": engine.device, **r} for engine, r in zip(self.engines, records, strict=True)]}

    def environment(self) -> dict:
        return self.engines[0].environment()


def _merged_progress(on_progress, batch: int, replicas: int):
    """One progress stream from several threads: steps of the slowest replica, images done by all."""
    if on_progress is None:
        return lambda _slot, _p: None
    lock = threading.Lock()
    latest: dict[int, dict] = {}

    def report(slot: int, progress: dict) -> None:
        with lock:
            latest[slot] = progress
            slowest = min(latest.values(), key=lambda p: (p["chunk"] / p["chunks"], p["step"] / p["total"]))
            on_progress({**slowest, "images_done": sum(p["images_done"] for p in latest.values()), "batch": batch,
                         "replica": slot, "replicas": replicas})

    return report


def _span(indices: Sequence[int]) -> str:
    if not indices:
        return "none"
    if list(indices) == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}" if len(indices) > 1 else str(indices[0])
    return ", ".join(map(str, indices))


def enable_replicas(devices: Sequence[str] | str = "all") -> ReplicaEngine:
    """Make replicas on these devices the kernel's engine (panels and sdxl_nb.generate use it)."""
    from sdxl_nb.backends.local import set_engine

    engine = ReplicaEngine(parse_devices(devices) if isinstance(devices, str) else list(devices))
    set_engine(engine)
    return engine


def disable_replicas() -> None:
    """Back to one engine on the default device (loaded on next use)."""
    from sdxl_nb.backends.local import set_engine

    set_engine(None)
