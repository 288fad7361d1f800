"""The one run loop of the local engine: chunks of images, CPU generators, progress, previews, stop, out of memory."""

from __future__ import annotations

import math
import time

import torch

import sdxl_nb.backends.local.environment as env
from sdxl_nb.backends.base import ImageSpec, RunHooks, RunOutput, RunPlan
from sdxl_nb.backends.local.calls import CallArguments
from sdxl_nb.backends.local.decode import decode_guarded
from sdxl_nb.backends.local.hires import HiresPass
from sdxl_nb.backends.local.oom import MemoryTuner, is_out_of_memory
from sdxl_nb.backends.local.preview import Throttle, latents_to_rgb
from sdxl_nb.backends.local.refiner import RefinerStage, job_refiner
from sdxl_nb.errors import one_line
from sdxl_nb.record.config_codec import encode_config

CPU_CHUNK = 8  # on the CPU batching still saves per-call overhead; more only delays the first finished images
GPU_MAX_CHUNK = 16
# Rough activation memory of one SDXL UNet sample per megapixel in half precision (weights excluded);
# an over-estimate only costs speed, an under-estimate is caught by the out-of-memory ladder.
BYTES_PER_MEGAPIXEL_SAMPLE = 1.2 * 2**30


def fitting_chunk_size(engine, loaded, plan: RunPlan) -> int:
    """Images per call that fit the device's free memory now (the CPU: a small fixed number)."""
    count, r = len(plan.images), plan.request
    if not engine.device.startswith("cuda"):
        return min(count, CPU_CHUNK)
    free, _total = torch.cuda.mem_get_info(torch.device(engine.device))
    samples = 2 if r.cfg > 1 else 1  # classifier-free guidance runs each image twice
    precision = loaded.pipe.unet.dtype.itemsize / 2
    width, height = r.output_size  # a hires pass runs at the larger size
    per_image = BYTES_PER_MEGAPIXEL_SAMPLE * width * height / 2**20 * samples * precision
    return max(1, min(count, GPU_MAX_CHUNK, int(0.7 * free // per_image)))


class RunLoop:
    """Runs a plan chunk by chunk on one engine. A stop keeps the finished chunks; image i always uses its own
    seed, whichever chunk it lands in; each finished chunk goes to `hooks.on_images` at once."""

    def __init__(self, engine, loaded, plan: RunPlan, hooks: RunHooks, auto_tune: bool):
        self.engine, self.loaded, self.plan, self.hooks = engine, loaded, plan, hooks
        r = plan.request
        self.pipe = engine.pipeline(loaded, r.mode, mixing=not plan.plain, controls=r.controlnets)
        self.pipe.scheduler = engine.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs)
        self.arguments = CallArguments(self.pipe, r, plan.plain, plan.texts(), engine.embedding_vectors(loaded, r))
        self.fixed = plan.calls is not None
        automatic = plan.chunk_size is None and not self.fixed
        chunk = len(plan.images) if self.fixed else plan.chunk_size or fitting_chunk_size(engine, loaded, plan)
        # A size the engine chose itself may always be lowered; the rest of the ladder is the user's choice.
        self.tuner = MemoryTuner(self.pipe, engine.device, chunk, enabled=auto_tune or automatic,
                                 size="{}x{}".format(*r.output_size), split=not self.fixed)
        self.throttle = Throttle(engine.preview_interval_s) if hooks.on_preview else None
        self.hires = HiresPass(engine, loaded, r, self.pipe) if r.hires else None
        scheduler = self.pipe.scheduler
        self.out = RunOutput(images=[], status="ok", generate_s=0.0, peak_memory_bytes=None, events=[], warnings=[],
                             scheduler={"name": r.scheduler.name, "class": type(scheduler).__name__,
                                        "config": encode_config(dict(scheduler.config))}, chunk_size=chunk)
        self.refiner = None  # the base + refiner hand-off (refiner.py); at switch 1 the refiner is not even loaded
        if r.refiner is not None and r.refiner_switch < 1:
            self.refiner = RefinerStage(job_refiner(engine, loaded, r),
                                        r, lambda: engine.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs),
                                        plan.texts(), engine.embedding_vectors(loaded, r))
            self.out.events += self.refiner.events
            self.out.warnings += self.refiner.warnings

    def run(self) -> RunOutput:
        env.reset_peak_memory(self.engine.device)
        started = time.perf_counter()
        pending = list(range(len(self.plan.images)))
        fixed = [list(call) for call in self.plan.calls] if self.fixed else None
        try:
            while pending:
                if self.hooks.stop_requested():
                    self.out.status = "interrupted"
                    break
                positions = fixed[0] if fixed else pending[:self.tuner.chunk_size]
                specs = [self.plan.images[p] for p in positions]
                planned = len(self.out.calls) + (len(fixed) if fixed else math.ceil(len(pending) / self.tuner.chunk_size))
                failure = None
                try:
                    finished = self._chunk(specs, (len(self.out.calls) + 1, planned), started)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    failure = one_line(exc)
                if failure is not None:  # outside the except block, so the failed attempt's tensors are freed
                    self.tuner.on_out_of_memory(failure, len(specs))
                    continue
                if not finished:
                    self.out.status = "interrupted"
                    break
                self.out.calls.append([spec.index for spec in specs])
                pending = [p for p in pending if p not in positions]
                if fixed:
                    fixed.pop(0)
        except BaseException as exc:
            # The caller records what finished before the failure (status failed or interrupted).
            try:
                exc.partial_output = self._finish(started)
            except Exception:  # an exception type without attributes, or a device too broken to query
                pass
            raise
        finally:
            self.tuner.restore()
        return self._finish(started)

    def _finish(self, started: float) -> RunOutput:
        out, tuner = self.out, self.tuner
        out.events[:0] = [e for e in tuner.events if e not in out.events]
        out.generate_s = time.perf_counter() - started
        out.peak_memory_bytes = env.peak_memory(self.engine.device)
        chunks = [len(call) for call in out.calls]
        out.chunk_size = max(chunks) if chunks else tuner.chunk_size
        out.adjustments = tuner.adjustments(chunks)
        if out.adjustments:
            out.chunk_size = tuner.chunk_size
            out.warnings.append(f"ran out of memory and auto-tuned: chunks {chunks}"
                                + (", VAE slicing+tiling" if tuner.vae_reduced else "")
                                + (", model CPU offload" if tuner.offloaded else "")
                                + " (see events); the record keeps these settings for re-runs")
        return out

    def _chunk(self, specs: list[ImageSpec], position: tuple[int, int], started: float) -> bool:
        """Denoise and decode one chunk into the output; False when a stop cut it short (its images are discarded)."""
        number, planned = position
        engine, out, hooks = self.engine, self.out, self.hooks
        state = {"stopped_at": None}

        def callback(pipe, i, _t, kwargs):
            if self.refiner:
                step, total = self.refiner.progress(pipe, i)
            else:  # a later pass (hires) counts on from the first pass's steps, so progress only moves forward
                before, after = self.hires.progress_span(pipe, pipe.num_timesteps) if self.hires else (0, 0)
                step, total = before + i + 1, before + pipe.num_timesteps + after
            progress = {"step": step, "total": total, "chunk": number, "chunks": planned,
                        "images_done": len(out.images), "images_in_chunk": len(specs),
                        "batch": len(self.plan.images), "elapsed": time.perf_counter() - started}
            hooks.progress(progress)
            if self.throttle is not None and self.throttle.ready(final=step == total):
                hooks.on_preview(latents_to_rgb(kwargs["latents"]), progress)
            if hooks.stop_requested() and step < total:
                pipe._interrupt = True  # diffusers skips the remaining steps
                state["stopped_at"] = step
            return kwargs

        indices = [spec.index for spec in specs]
        labels = [f"image {spec.index + 1} (seed {spec.seed})" for spec in specs]
        engine.note_new_graph_shape(self.loaded, self.plan.request, len(specs), out)
        engine.fault("denoise", indices=indices)
        tensor_inputs = {"callback_on_step_end_tensor_inputs": ["latents"]} if self.throttle else {}
        self.pipe.noise_mix = self.arguments.noise_mix(specs)
        arguments = self.arguments(specs)
        base_arguments = self.refiner.base_arguments(arguments) if self.refiner else arguments
        try:
            latents = engine.call_pipeline(self.pipe, **base_arguments, callback_on_step_end=callback,
                                           **tensor_inputs).images
            if self.hires is not None and state["stopped_at"] is None:  # the second pass (sdxl_nb.backends.local.hires)
                latents = self.hires(latents, self.arguments(specs), labels, callback_on_step_end=callback,
                                     **tensor_inputs)
        finally:
            self.pipe.noise_mix = None
        if self.refiner is not None and state["stopped_at"] is None:
            latents = self.refiner.refine(engine, latents, specs, arguments, callback_on_step_end=callback,
                                          **tensor_inputs)
        if state["stopped_at"] is not None:
            out.events.append(f"stopped at step {state['stopped_at']} of chunk {number}; "
                              f"its {len(specs)} unfinished image(s) discarded")
            return False
        injected = engine.fault("latents", indices=indices, latents=latents)
        latents = latents if injected is None else injected
        engine.fault("decode", indices=indices)
        decoded = decode_guarded(self.refiner.decoder(self.pipe) if self.refiner else self.pipe, latents, labels)
        out.events += decoded.events
        done = []
        for spec, label, image, problem in zip(specs, labels, decoded.images, decoded.problems, strict=True):
            if image is None:
                out.dropped.append({"index": spec.index, "seed": spec.seed, "problem": problem})
                out.warnings.append(f"{label} not saved: {problem} even with the VAE in float32")
            else:
                if self.arguments.inpaint is not None:  # the original pasted back outside the mask (A1111's overlay)
                    image = self.arguments.inpaint.finish(image)
                done.append((spec.index, spec.seed, image))
        if decoded.redecoded and not any(decoded.problems):
            out.warnings.append("the VAE overflowed (NaN/black) and was decoded again in float32 (slower); an "
                                "fp16-safe VAE such as madebyollin/sdxl-vae-fp16-fix avoids it")
        out.images += done
        hooks.images_done(done, out.scheduler)
        return True
