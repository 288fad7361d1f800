"""What the lab's queue checks before it queues each kind of job (bad input: InputError, nothing queued)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from sdxl_nb.config.presets import load_presets
from sdxl_nb.config.registry import find_model
from sdxl_nb.errors import InputError, ModelUnavailableError
from sdxl_nb.jobs.generate import generate
from sdxl_nb.jobs.pipeline import default_output_dir
from sdxl_nb.jobs.queued import Job
from sdxl_nb.record.description import planned_record, summary
from sdxl_nb.record.store import check_output_dir
from sdxl_nb.request.prepare import prepare
from sdxl_nb.request.resolve import GenerationRequest


class QueueSubmissions:
    """The submit_* half of JobQueue: validate, label and build a Job, then hand it to the queue's `_enqueue`."""

    def submit(self, request: GenerationRequest, *, out_dir: str | Path | None = None, chunk_size: int | None = None,
               check_memory: bool = False, owner: object = None, notes: tuple[str, ...] = ()) -> Job:
        """Validate a request and queue it; InputError (nothing queued) when it would not run."""
        from sdxl_nb.backends.base import check_request

        check_request(self._chosen_backend(), request)  # refused before anything is resolved or built
        presets = load_presets()
        resolved = prepare(request, presets)
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or not 1 <= chunk_size <= resolved.batch):
            raise InputError(f"chunk size {chunk_size!r} is out of range; accepted: 1 to the batch ({resolved.batch})")
        folder = self._folder(out_dir)
        info = find_model(resolved.model.id, presets)
        if not info.available and not self._remote_chosen():
            raise ModelUnavailableError(info.reason)
        from sdxl_nb.config.refiners import refiner_info

        refiner_info(resolved, presets, local=not self._remote_chosen())  # a missing refiner: refused before queueing
        label = summary(planned_record(resolved, info.id))
        request = replace(request, model=info.id)
        job = Job(id=next(self._ids), kind="generate", model=info.id, out_dir=folder, label=label, request=request,
                  work=partial(generate, request, out_dir=folder, chunk_size=chunk_size), chunk_size=chunk_size,
                  check_memory=check_memory, owner=owner, notes=tuple(notes), prompt=request.prompt)
        return self._enqueue(job)

    def submit_animation(self, request, *, out_dir: str | Path | None = None, owner: object = None,
                         on_frames: Callable | None = None) -> Job:
        """Validate an AnimationRequest and queue it; InputError (nothing queued) when it would not run."""
        from sdxl_nb.backends.base import check_plan
        from sdxl_nb.jobs.animate import animate, prepare_animation
        from sdxl_nb.jobs.animate.job import AnimationJob

        plan = prepare_animation(request, load_presets())
        backend = self._chosen_backend()
        if backend is not None:  # e.g. ComfyUI: no slerp, no prompt travel (the local engine runs every plan)
            check_plan(backend, AnimationJob(plan).run_plan(None, None))
        base = plan.base
        folder = self._folder(out_dir)
        self._check_model(base.model.id)
        from sdxl_nb.jobs.animate.job import animation_settings

        planned = planned_record(base, base.model.id)
        planned.update(mode="animate", batch=len(plan.frames), animation=animation_settings(plan))
        work = partial(animate, replace(request, model=base.model.id), out_dir=folder, on_frames=on_frames)
        return self._enqueue(Job(id=next(self._ids), kind="animate", model=base.model.id, out_dir=folder,
                                 label=summary(planned), work=work, owner=owner, prompt=request.prompt))

    def submit_sweep(self, base: GenerationRequest, x, y=None, *, out_dir: str | Path | None = None,
                     owner: object = None, on_cell: Callable | None = None) -> Job:
        """Validate every cell of a sweep and queue it as one job; InputError (nothing queued) when a cell would
        not run. The sweep's plan (and its seed, when drawn) is fixed now, so what runs is what was checked."""
        from sdxl_nb.jobs.sweep import plan_sweep, run_planned_sweep

        plan = plan_sweep(base, x, y, load_presets())
        folder = self._folder(out_dir)
        models = sorted({prepare(cell.request).model.id for cell in plan.cells})
        for model in models:
            self._check_model(model)
        first = plan.cells[0]
        planned = planned_record(prepare(first.request), models[0] if len(models) == 1 else ", ".join(models))
        planned.update(mode="sweep", batch=len(plan.cells), sweep={**plan.tag(first), "cells": []})
        for name in ("x", "y"):  # the sweep's axes, not the first cell's place on them
            if planned["sweep"][name] is not None:
                planned["sweep"][name] = {"field": planned["sweep"][name]["field"]}
        work = partial(run_planned_sweep, plan, out_dir=folder, on_cell=on_cell)
        return self._enqueue(Job(id=next(self._ids), kind="sweep", model=", ".join(models), out_dir=folder,
                                 label=summary(planned), work=work, owner=owner, prompt=base.prompt))

    def submit_upscale(self, image: str | Path, *, scale: float = 2.0, upscaler: str | None = None,
                       out_dir: str | Path | None = None, owner: object = None) -> Job:
        """Validate an upscale of a saved image and queue it (its own recorded job); InputError: nothing queued."""
        from sdxl_nb.jobs.upscale import check_upscale, upscale
        from sdxl_nb.request.resolve import read_input_image

        source = read_input_image(str(image), "image")
        settings = check_upscale(scale, upscaler, source.size)
        folder = self._folder(out_dir)
        planned = {"mode": "upscale", "upscale": settings.record(source), "init_image": {"size": list(source.size)}}
        label = f"{summary(planned)} · {Path(image).name}"
        work = partial(upscale, str(image), scale=scale, upscaler=settings.upscaler.name, out_dir=folder)
        return self._enqueue(Job(id=next(self._ids), kind="upscale", model=settings.upscaler.name, out_dir=folder,
                                 label=label, work=work, owner=owner))

    def _check_model(self, model_id: str) -> None:
        """Refuse a model this machine does not have, unless a remote backend runs its own copy."""
        info = find_model(model_id, load_presets())
        if not info.available and not self._remote_chosen():
            raise ModelUnavailableError(info.reason)

    def _remote_chosen(self) -> bool:
        """Whether the jobs that follow run on a remote backend (chosen now, or applied before the next job)."""
        backend = self._chosen_backend()
        return backend is not None and not backend.capabilities.local_models

    def submit_load(self, model_id: str, *, out_dir: str | Path | None = None) -> Job:
        """Queue loading a model (before any job); InputError when it is unknown or unavailable."""
        info = find_model(model_id, load_presets())
        if not info.available:
            raise ModelUnavailableError(info.reason)
        job = Job(id=next(self._ids), kind="load", model=info.id, out_dir=self._folder(out_dir),
                  label=f"load {info.id}")
        return self._enqueue(job)

    def _folder(self, out_dir) -> Path:
        return check_output_dir(out_dir or self.out_dir or default_output_dir())
