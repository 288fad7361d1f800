"""Animation frames through SDXL in batches: seed noise, slerp between seeds, prompt-embedding travel."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import diffusers
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from sdxl_nb.backends.local import environment as env
from sdxl_nb.backends.local.core import Engine, LoadedModel, _load_rgb
from sdxl_nb.errors import GenerationError, one_line
from sdxl_nb.jobs.animate.spec import FramesJob, FrameSpec
from sdxl_nb.record.config_codec import decode_config, encode_config

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]
ChunkFn = Callable[[list[tuple[int, Image.Image]]], None]
CPU_BATCH = 8  # on CPU batching still saves per-call overhead; more only delays the first finished frames
GPU_MAX_BATCH = 16
# Rough activation memory of one SDXL UNet sample per megapixel in half precision (weights excluded);
# an over-estimate only costs speed, an under-estimate is caught by the out-of-memory retry below.
BYTES_PER_MEGAPIXEL_SAMPLE = 1.2 * 2**30


def initial_noise(seed: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The initial noise SDXL's own prepare_latents draws for one image from a CPU generator of this seed."""
    return randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed), device=torch.device("cpu"),
                        dtype=dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation, computed in float64; t=0 returns a and t=1 returns b exactly."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    a64, b64 = a.double(), b.double()
    cos = (a64 * b64).sum() / (a64.norm() * b64.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if theta.abs() < 1e-4:  # nearly parallel: the spherical weights are 0/0, the straight line is the same path
        mixed = torch.lerp(a64, b64, t)
    else:
        sin = torch.sin(theta)
        mixed = torch.sin((1 - t) * theta) / sin * a64 + torch.sin(t * theta) / sin * b64
    return mixed.to(a.dtype)


class _NoiseMix:
    """Per call, (seed_end, t) for each image, or None: mix the plain noise toward seed_end's by slerp."""

    noise_mix: list[tuple[int, float] | None] | None = None

    def _mixed(self, noise: list[torch.Tensor], end_noise: Callable[[int], torch.Tensor]) -> torch.Tensor:
        ends: dict[int, torch.Tensor] = {}
        mixed = []
        for plain, mix in zip(noise, self.noise_mix, strict=True):
            if mix is None:
                mixed.append(plain)
                continue
            seed_end, t = mix
            if seed_end not in ends:
                ends[seed_end] = end_noise(seed_end)
            mixed.append(slerp(plain, ends[seed_end], t))
        return torch.cat(mixed)


class FramesTxt2Img(_NoiseMix, StableDiffusionXLPipeline):
    def prepare_latents(self, batch_size, num_channels_latents, height, width, dtype, device, generator, latents=None):
        if self.noise_mix is None or latents is not None:
            return super().prepare_latents(batch_size, num_channels_latents, height, width, dtype, device, generator,
                                           latents)
        shape = (1, num_channels_latents, int(height) // self.vae_scale_factor, int(width) // self.vae_scale_factor)
        # The same draws, in the same order, as randn_tensor with a list of CPU generators.
        plain = [randn_tensor(shape, generator=g, device=torch.device("cpu"), dtype=dtype) for g in generator]
        mixed = self._mixed(plain, lambda seed: initial_noise(seed, shape, dtype))
        return super().prepare_latents(batch_size, num_channels_latents, height, width, dtype, device, generator,
                                       mixed.to(device))


class FramesImg2Img(_NoiseMix, StableDiffusionXLImg2ImgPipeline):
    def prepare_latents(self, image, timestep, batch_size, num_images_per_prompt, dtype, device, generator=None,
                        add_noise=True):
        if self.noise_mix is None or not add_noise:
            return super().prepare_latents(image, timestep, batch_size, num_images_per_prompt, dtype, device,
                                           generator, add_noise)
        # The init latents consume each generator's first draw (the VAE posterior sample), as in a plain run.
        init = super().prepare_latents(image, timestep, batch_size, num_images_per_prompt, dtype, device, generator,
                                       add_noise=False)
        shape = (1, *init.shape[1:])
        plain = [randn_tensor(shape, generator=g, device=torch.device("cpu"), dtype=dtype) for g in generator]

        def end_noise(seed: int) -> torch.Tensor:
            # seed_end's noise as its own plain img2img run would draw it: after its VAE posterior sample.
            end_generator = torch.Generator("cpu").manual_seed(seed)
            super(FramesImg2Img, self).prepare_latents(image[:1], timestep[:1], 1, 1, dtype, device, [end_generator],
                                                       add_noise=False)
            return randn_tensor(shape, generator=end_generator, device=torch.device("cpu"), dtype=dtype)

        return self.scheduler.add_noise(init, self._mixed(plain, end_noise).to(device), timestep)


_FRAME_PIPELINES = {"txt2img": FramesTxt2Img, "img2img": FramesImg2Img}


@dataclass
class FramesOutput:
    images: list[tuple[int, Image.Image]]  # (frame index, image), in frame order
    calls: list[list[int]]  # frame indices of each finished pipeline call
    status: str  # "ok" or "interrupted"
    generate_s: float
    peak_memory_bytes: int | None
    scheduler: dict
    events: list[str] = field(default_factory=list)


def frames_pipeline(loaded: LoadedModel, source: str):
    """The frame pipeline for txt2img/img2img; it shares every module with the loaded model (no copy)."""
    key = f"frames-{source}"
    if key not in loaded.derived:
        pipe = _FRAME_PIPELINES[source](**loaded.pipe.components, add_watermarker=False)
        pipe.set_progress_bar_config(disable=True)
        loaded.derived[key] = pipe
    return loaded.derived[key]


def default_batch_size(engine: Engine, loaded: LoadedModel, job: FramesJob) -> int:
    """Frames per pipeline call that fit the device's free memory (CPU: a small fixed batch)."""
    frames = len(job.frames)
    if not engine.device.startswith("cuda"):
        return min(frames, CPU_BATCH)
    free, _total = torch.cuda.mem_get_info()
    samples = 2 if job.cfg > 1 else 1  # classifier-free guidance runs each frame twice
    precision = loaded.pipe.unet.dtype.itemsize / 2
    per_frame = BYTES_PER_MEGAPIXEL_SAMPLE * job.width * job.height / 2**20 * samples * precision
    return max(1, min(frames, GPU_MAX_BATCH, int(0.7 * free // per_frame)))


def scheduler_for(engine: Engine, loaded: LoadedModel, job: FramesJob):
    if job.scheduler_config is None:
        return engine.make_scheduler(loaded, job.scheduler_class, job.scheduler_kwargs)
    cls = getattr(diffusers, job.scheduler_class) if job.scheduler_class else type(loaded.pipe.scheduler)
    return cls.from_config(decode_config(job.scheduler_config))


def run_frames(engine: Engine, loaded: LoadedModel, job: FramesJob, *, on_progress: ProgressFn | None = None,
               should_stop: StopFn | None = None, on_call_done: ChunkFn | None = None) -> FramesOutput:
    """Run every frame, several per pipeline call; a stop keeps the frames of finished calls."""
    with engine.lock:
        return _Runner(engine, loaded, job, on_progress or (lambda _p: None), should_stop or (lambda: False),
                       on_call_done or (lambda _frames: None)).run()


class _Runner:
    def __init__(self, engine, loaded, job: FramesJob, on_progress, should_stop, on_call_done):
        self.engine, self.loaded, self.job = engine, loaded, job
        self.on_progress, self.should_stop, self.on_call_done = on_progress, should_stop, on_call_done
        self.pipe = frames_pipeline(loaded, job.source)
        self.pipe.scheduler = scheduler_for(engine, loaded, job)
        self.device = self.pipe._execution_device
        self.do_cfg = job.cfg > 1 and self.pipe.unet.config.time_cond_proj_dim is None
        self.embeddings: dict[str, tuple] = {}
        self.init_image = None if job.init_image is None else _load_rgb(job.init_image, (job.width, job.height))

    def run(self) -> FramesOutput:
        job, frames = self.job, list(self.job.frames)
        scheduler = self.pipe.scheduler
        scheduler_record = {"class": type(scheduler).__name__, "config": encode_config(dict(scheduler.config))}
        env.reset_peak_memory(self.engine.device)
        fixed = job.calls is not None
        size = job.batch_size or default_batch_size(self.engine, self.loaded, job)
        pending = [list(call) for call in job.calls] if fixed else None
        images: list[tuple[int, Image.Image]] = []
        calls: list[list[int]] = []
        events: list[str] = []
        status, started, position = "ok", time.perf_counter(), 0
        while position < len(frames):
            if self.should_stop():
                status = "interrupted"
                break
            chosen = pending.pop(0) if fixed else list(range(position, min(position + size, len(frames))))
            batch = [frames[i] for i in chosen]
            try:
                finished, stopped_at = self._call(batch, len(calls), images, started)
            except torch.OutOfMemoryError as exc:
                if fixed or len(batch) == 1:
                    raise GenerationError(f"out of memory on {self.engine.device} at {job.width}x{job.height}, "
                                          f"{len(batch)} frame(s) at once: {one_line(exc)}") from exc
                size = max(1, len(batch) // 2)
                events.append(f"out of memory with {len(batch)} frames per call; continued with {size}")
                if self.engine.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                continue
            if stopped_at is not None:
                events.append(f"stopped at step {stopped_at} of call {len(calls) + 1}; its {len(batch)} unfinished "
                              "frame(s) discarded")
                status = "interrupted"
                break
            done = [(spec.index, image) for spec, image in zip(batch, finished, strict=True)]
            images.extend(done)
            calls.append([spec.index for spec in batch])
            position += len(batch)
            self.on_call_done(done)
        return FramesOutput(images=images, calls=calls, status=status, generate_s=time.perf_counter() - started,
                            peak_memory_bytes=env.peak_memory(self.engine.device), scheduler=scheduler_record,
                            events=events)

    def _call(self, batch: list[FrameSpec], call_number: int, images: list, started: float):
        job, total_frames = self.job, len(self.job.frames)
        state = {"stopped_at": None}

        def callback(p, i, _t, kwargs):
            self.on_progress({"step": i + 1, "total": p.num_timesteps, "call": call_number + 1,
                              "frames_done": len(images), "frames": total_frames, "frames_in_call": len(batch),
                              "elapsed": time.perf_counter() - started,
                              # the generic keys every progress display understands
                              "chunk": call_number + 1, "images_done": len(images), "batch": total_frames})
            if self.should_stop() and i + 1 < p.num_timesteps:
                p._interrupt = True  # diffusers skips the remaining steps
                state["stopped_at"] = i + 1
            return kwargs

        conditioning = [self._conditioning(spec) for spec in batch]

        def stacked(position: int):
            parts = [c[position] for c in conditioning]
            return None if parts[0] is None else torch.cat(parts)

        # One CPU generator per frame: frame i depends on its own seed alone, on any device.
        generators = [torch.Generator("cpu").manual_seed(spec.seed) for spec in batch]
        args = dict(prompt_embeds=stacked(0), negative_prompt_embeds=stacked(1), pooled_prompt_embeds=stacked(2),
                    negative_pooled_prompt_embeds=stacked(3), num_inference_steps=job.steps,
                    guidance_scale=job.cfg, generator=generators, output_type="pil", callback_on_step_end=callback)
        if job.source == "img2img":
            args.update(image=self.init_image, strength=job.strength)
        else:
            args.update(width=job.width, height=job.height)
        mixes = [None if spec.seed_end is None else (spec.seed_end, spec.t) for spec in batch]
        self.pipe.noise_mix = mixes if any(mixes) else None
        try:
            output = self.engine.call_pipeline(self.pipe, **args)
        finally:
            self.pipe.noise_mix = None
        return output.images, state["stopped_at"]

    def _encode(self, text: str) -> tuple:
        if text not in self.embeddings:
            with torch.no_grad():
                self.embeddings[text] = self.pipe.encode_prompt(
                    prompt=text, device=self.device, num_images_per_prompt=1,
                    do_classifier_free_guidance=self.do_cfg, negative_prompt=self.job.negative or None)
        return self.embeddings[text]

    def _conditioning(self, spec: FrameSpec) -> tuple:
        """(prompt, negative, pooled, negative pooled) embeddings; prompt travel blends both encoders' outputs."""
        start = self._encode(spec.styled_prompt)
        if spec.styled_prompt_end is None:
            return start
        end = self._encode(spec.styled_prompt_end)
        # The negative side is the same text at both ends, so it is used as is (a blend could move its last bit).
        return (_lerp(start[0], end[0], spec.t), start[1], _lerp(start[2], end[2], spec.t), start[3])


def _lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Straight-line blend in float32; t=0 and t=1 give a and b exactly."""
    if t == 0:
        return a
    if t == 1:
        return b
    return torch.lerp(a.float(), b.float(), t).to(a.dtype)
