"""Replicas: one copy of the model per device, a job's batch split across them in parallel threads.

Image i keeps seed + i whichever replica draws it, and the images come back in batch order, so a
job on replicas records the same seeds as on one device. Off unless asked for (`enable_replicas`,
`ReplicaEngine`, or `--replicas` on the command line). Torch stays inside sdxl_nb.backends.local.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sdxl_nb.backends.base import Capabilities, RunHooks, RunOutput, RunPlan
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
    """A backend of several local engines: pass it as `engine=` to any job, or make it the kernel's engine."""

    name = "replicas"
    capabilities = Capabilities(previews=True, memory_facts=True, configure=True, scheduler_config=True,
                                noise_mix=True, prompt_blend=True, prompt_weighting=True, lora=True, embeddings=True,
                                local_models=True, rerun=True, refiner=True, hires=True, ip_adapter=True, controlnet=True)

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

    @property
    def auto_tune(self) -> bool:
        return self.engines[0].auto_tune

    @auto_tune.setter
    def auto_tune(self, value: bool) -> None:
        for engine in self.engines:
            engine.auto_tune = value

    @property
    def dtype(self):
        return self.engines[0].dtype

    def check_options(self, options) -> None:
        """Refuse (InputError) options any replica's device cannot run."""
        for engine in self.engines:
            engine.check_options(options)

    def configure(self, options) -> list[str]:
        """The same options on every replica (models an option changes reload on each), or on none when a
        replica's device cannot run them."""
        self.check_options(options)
        with self.lock:
            lines = []
            for engine in self.engines:
                lines += [f"{engine.device}: {line}" for line in engine.configure(options)]
            if lines:
                self.loaded.clear()
            return lines

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
    def describe_prompts(loaded: ReplicaModel, plan):
        engine, first = loaded.parts[0]
        return engine.describe_prompts(first, plan)

    def check_networks(self, info, r) -> None:
        """Each replica holds the same model: the first one's check stands for all."""
        self.engines[0].check_networks(info, r)

    def lora_problem(self, info, lora) -> str | None:
        return self.engines[0].lora_problem(info, lora)

    def memory_facts(self, loaded: ReplicaModel) -> dict:
        """The first replica's facts: each replica runs at most the whole batch, so this is conservative."""
        engine, first = loaded.parts[0]
        return engine.memory_facts(first)

    def run(self, plan: RunPlan, loaded: ReplicaModel, hooks: RunHooks | None = None) -> RunOutput:
        """Each replica runs its block of the plan's images in its own thread; results merge in index order.
        A fixed grouping (a re-run) is split by whole calls, so every call runs as it did."""
        hooks = hooks or RunHooks()
        with self.lock:
            parts = _split_plan(plan, len(loaded.parts))
            report = _merged_progress(hooks.on_progress, len(plan.images), len(parts))
            results: list = [None] * len(parts)
            started = time.perf_counter()

            def work(slot: int) -> None:
                engine, part = loaded.parts[slot]
                replica_hooks = RunHooks(on_progress=lambda p, slot=slot: report(slot, p),
                                         should_stop=hooks.should_stop, on_images=hooks.on_images,
                                         on_preview=hooks.on_preview if slot == 0 else None)
                try:
                    results[slot] = engine.run(parts[slot], part, replica_hooks)
                except BaseException as exc:  # kept and reported; the other replicas' images survive
                    results[slot] = exc

            threads = [threading.Thread(target=work, args=(slot,), name=f"replica-{slot}", daemon=True)
                       for slot in range(len(parts))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            blocks = [[spec.index for spec in part.images] for part in parts]
            return self._merge(loaded, blocks, results, time.perf_counter() - started)

    def _merge(self, loaded: ReplicaModel, blocks, results, generate_s: float) -> RunOutput:
        images, calls, events, warnings, failures, peaks, statuses, scheduler = [], [], [], [], [], [], [], None
        dropped, chunk_size = [], None
        for (engine, _part), block, result in zip(loaded.parts, blocks, results, strict=False):
            where = f"{engine.device} (images {_span(block)})"
            if isinstance(result, BaseException):
                failures.append(f"replica {where} failed: {one_line(result)}")
                continue
            images += result.images
            calls += result.calls
            dropped += result.dropped
            events += [f"{engine.device}: {event}" for event in result.events]
            warnings += result.warnings
            statuses.append(result.status)
            scheduler = scheduler or result.scheduler
            chunk_size = max(chunk_size or 0, result.chunk_size or 0) or None
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
            missing = sorted({i for block in blocks for i in block} - {index for index, _seed, _image in images})
            failures.append(f"images {_span(missing)} missing; the others were saved")
        return RunOutput(images=images, status=status, generate_s=generate_s, calls=calls, dropped=dropped,
                         peak_memory_bytes=max(peaks) if peaks else None, scheduler=scheduler, chunk_size=chunk_size,
                         events=events, warnings=warnings, error="; ".join(failures) or None)

    def device_record(self) -> dict:
        records = [engine.device_record() for engine in self.engines]
        return {"type": records[0]["type"], "name": ", ".join(r["name"] for r in records),
                "replicas": [{"device": engine.device, **r} for engine, r in zip(self.engines, records, strict=True)]}

    def environment(self) -> dict:
        return self.engines[0].environment()

    @staticmethod
    def backend_record(_model_id: str) -> None:
        return None  # local devices: the record's device lists every replica


def _split_plan(plan: RunPlan, replicas: int) -> list[RunPlan]:
    """One sub-plan per replica: contiguous blocks of images, or of whole calls when the grouping is fixed."""
    plan = replace(plan, all_texts=tuple(plan.texts()))  # every replica pads prompts to the whole plan's longest
    if plan.calls is None:
        return [replace(plan, images=tuple(plan.images[i] for i in block))
                for block in split_indices(len(plan.images), replicas)]
    parts = []
    for block in split_indices(len(plan.calls), replicas):
        calls = [plan.calls[c] for c in block]
        positions = [p for call in calls for p in call]
        renumber = {p: n for n, p in enumerate(positions)}
        parts.append(replace(plan, images=tuple(plan.images[p] for p in positions),
                             calls=tuple(tuple(renumber[p] for p in call) for call in calls)))
    return parts


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
