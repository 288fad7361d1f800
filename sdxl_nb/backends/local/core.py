"""The Engine: loads pipelines once, derives img2img/inpaint from them, swaps schedulers, runs jobs."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline
from PIL import Image

from sdxl_nb import settings
from sdxl_nb.backends.base import RunOutput
from sdxl_nb.backends.local import environment as env
from sdxl_nb.backends.local.decode import decode_guarded
from sdxl_nb.backends.local.loading import DTYPES, default_device, default_dtype, dtype_name, load_pipeline
from sdxl_nb.backends.local.oom import MemoryTuner, component_bytes, free_memory_bytes, in_use_bytes, is_out_of_memory
from sdxl_nb.backends.local.preview import Throttle, latents_to_rgb
from sdxl_nb.backends.local.speed import apply_options, set_vae_savers, warm_up
from sdxl_nb.config.options import EngineOptions
from sdxl_nb.config.registry import ModelInfo, locate_model
from sdxl_nb.config.tiny import content_revision, ensure_tiny_model
from sdxl_nb.errors import ModelUnavailableError, one_line
from sdxl_nb.record.config_codec import encode_config
from sdxl_nb.request.prompt_window import window_warnings
from sdxl_nb.request.resolve import ResolvedRequest

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]
PreviewFn = Callable[[Image.Image, dict], None]  # (approximate RGB of the current latents, progress dict)
PreviewFn = Callable[[Image.Image, dict], None]  # (approximate RGB of the current latents, progress dict)
_PIPELINE_CLASSES = {
    "txt2img": StableDiffusionXLPipeline,
    "img2img": StableDiffusionXLImg2ImgPipeline,
    "inpaint": StableDiffusionXLInpaintPipeline,
}


@dataclass
class LoadedModel:
    info: ModelInfo
    revision: str
    path: str
    pipe: StableDiffusionXLPipeline
    load_s: float
    vae: dict | None = None  # the dedicated VAE used, {"id", "revision"}
    warnings: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # options applied at load, warm-up time
    derived: dict = field(default_factory=dict)  # mode -> pipeline sharing pipe's modules
    own_scheduler: object = None  # the scheduler saved with the model ("Default"), kept apart from swaps
    graph_shapes: set = field(default_factory=set)  # (width, height, UNet batch) compiled for CUDA graphs

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.pipe.unet.dtype)


class Engine:
    """Loaded pipelines (a bounded cache) and the lock that keeps one job at a time on the device."""

    def __init__(self, device: str | None = None, dtype: torch.dtype | None = None, max_loaded: int = 1,
                 auto_tune: bool = False, options: EngineOptions | None = None):
        self.device = device or default_device()
        self.options = options or EngineOptions()
        self.dtype = dtype or (DTYPES[self.options.dtype] if self.options.dtype else default_dtype(self.device))
        self.max_loaded = max_loaded
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self.lock = threading.RLock()
        self.auto_tune = auto_tune  # on out of memory: retry lighter settings (opt-in; the lab turns it on)
        # Test hook: called as fault_hook(stage, **context) at "denoise", "latents" (may return new latents)
        # and "decode"; tests raise out-of-memory errors or inject NaN there. None in normal use.
        self.fault_hook: Callable[..., object] | None = None
        self._graph_thread: ThreadPoolExecutor | None = None

    def call_pipeline(self, pipe, **kwargs):
        """One pipeline call; with the cuda_graphs option, always on the engine's one graph thread.

        torch keeps CUDA-graph trees per host thread, and before torch 2.12 a UNet captured in one thread
        asserted when called from another (pytorch issue 123177). The lab runs jobs in its queue's thread
        and the notebook in the main one, so every call of a graph-compiled model goes through one thread.
        """
        if not self.options.cuda_graphs:
            return pipe(**kwargs)
        if self._graph_thread is None:
            self._graph_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdxl_nb-cuda-graphs")
        future = self._graph_thread.submit(lambda: pipe(**kwargs))
        try:
            return future.result()
        except BaseException:
            if not future.done():  # the caller was interrupted (Ctrl-C): stop the call, never leave it running
                pipe._interrupt = True  # diffusers skips the remaining steps
                wait([future])
            raise

    def configure(self, options: EngineOptions) -> list[str]:
        """Change options; models whose modules an option changes are unloaded and reload with it."""
        with self.lock:
            changed = [name for name in options.needs_reload if getattr(options, name) != getattr(self.options, name)]
            self.options = options
            if options.dtype or "dtype" in changed:
                self.dtype = DTYPES[options.dtype] if options.dtype else default_dtype(self.device)
            if changed and self.loaded:
                self.loaded.clear()
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                return [f"options changed ({', '.join(changed)}): loaded models will reload"]
            for loaded in self.loaded.values():
                set_vae_savers(loaded.pipe, options)
            return []

    # ---- loading ----
    def load(self, info: ModelInfo, on_stage: Callable[[str], None] | None = None) -> LoadedModel:
        """Load a model once per engine; later calls return the cached pipeline."""
        stage = on_stage or (lambda _name: None)
        with self.lock:
            if info.id in self.loaded:
                self.loaded.move_to_end(info.id)
                return self.loaded[info.id]
            started = time.perf_counter()
            if info.source == "embedded":
                stage("building the embedded model")
                folder = ensure_tiny_model()
                revision = content_revision(folder)
            else:
                folder, revision = locate_model(info.id)
            while len(self.loaded) >= self.max_loaded:
                self.loaded.popitem(last=False)
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
            try:
                pipe, vae, warnings = load_pipeline(info, Path(folder), self.device, self.dtype, stage)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelUnavailableError(f"model {info.id!r} could not be loaded from {folder}: "
                                            f"{one_line(exc)}") from exc
            events = apply_options(pipe, self.options, self.device)
            load_s = time.perf_counter() - started
            if self.options.warmup:
                stage("warming up")
                width, height = info.preset.native_size or (1024, 1024)
                took = warm_up(pipe, width, height, call=self.call_pipeline)
                events.append(f"warm-up run at {width}x{height} took {took:.2f} s")
            loaded = LoadedModel(info=info, revision=revision, path=str(folder), pipe=pipe, load_s=load_s,
                                 vae=vae, warnings=warnings, events=events, own_scheduler=pipe.scheduler)
            if self.options.warmup:
                loaded.graph_shapes.add((width, height, 2))  # the warm-up ran with guidance at this size
            self.loaded[info.id] = loaded
            return loaded

    def pipeline(self, loaded: LoadedModel, mode: str):
        """The pipeline for a mode; img2img and inpaint reuse the loaded modules (no copy, same dtype)."""
        if mode == "txt2img":
            return loaded.pipe
        if mode not in loaded.derived:
            # Constructing from the components shares every module; from_pipe would cast to float32.
            derived = _PIPELINE_CLASSES[mode](**loaded.pipe.components, add_watermarker=False)
            derived.set_progress_bar_config(disable=True)
            loaded.derived[mode] = derived
        return loaded.derived[mode]

    @staticmethod
    def make_scheduler(loaded: LoadedModel, cls_name: str | None, kwargs: dict):
        """A fresh scheduler from the model's own config (no weights, near-free)."""
        # From the model's own scheduler: the pipeline's is whatever the previous job swapped in.
        base = loaded.own_scheduler or loaded.pipe.scheduler
        cls = type(base) if cls_name is None else getattr(diffusers, cls_name)
        return cls.from_config(base.config, **kwargs)

    # ---- running ----
    @staticmethod
    def prompt_warnings(loaded: LoadedModel, *texts: tuple[str, str]) -> list[str]:
        """Warn when CLIP's token window cuts off the tail of a prompt."""
        return window_warnings(loaded.pipe.tokenizer, *texts)

    def run(self, resolved: ResolvedRequest, loaded: LoadedModel, *, on_progress: ProgressFn | None = None,
            should_stop: StopFn | None = None, chunk_size: int | None = None,
            auto_tune: bool | None = None, indices: list[int] | None = None, on_preview: PreviewFn | None = None,
            preview_interval_s: float = 0.5) -> RunOutput:
        """Generate every image of a request (or only the batch `indices` given), chunk by chunk.

        A stop keeps the finished chunks. Image i always uses seed i, whichever subset runs.

        Calls queue on the engine's lock: one job at a time on the device. `auto_tune` (default: the
        engine's setting) retries lighter settings on out of memory instead of failing at once.
        `on_preview`, when given, gets a cheap RGB approximation of the latents at most once per
        `preview_interval_s` (and at each chunk's last step).
        """
        with self.lock:
            return self._run(resolved, loaded, on_progress or (lambda _p: None), should_stop or (lambda: False),
                             chunk_size or resolved.batch, self.auto_tune if auto_tune is None else auto_tune,
                             list(range(resolved.batch)) if indices is None else list(indices),
                             (on_preview, Throttle(preview_interval_s)) if on_preview else None)

    def _fault(self, stage: str, **context):
        # The test hook: tests raise out-of-memory errors or return NaN latents at chosen stages.
        return self.fault_hook(stage, **context) if self.fault_hook else None

    def _run(self, r: ResolvedRequest, loaded: LoadedModel, on_progress: ProgressFn, should_stop: StopFn,
             chunk_size: int, auto_tune: bool, todo: list[int], preview=None) -> RunOutput:
        pipe = self.pipeline(loaded, r.mode)
        scheduler = self.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs)
        pipe.scheduler = scheduler
        scheduler_record = {"name": r.scheduler.name, "class": type(scheduler).__name__,
                            "config": encode_config(dict(scheduler.config))}
        common = _call_arguments(r)
        env.reset_peak_memory(self.device)
        out = RunOutput(images=[], status="ok", generate_s=0.0, peak_memory_bytes=None, scheduler=scheduler_record,
                        events=[], warnings=[], chunk_size=chunk_size)
        started = time.perf_counter()
        tuner = MemoryTuner(pipe, self.device, chunk_size, enabled=auto_tune, size=f"{r.width}x{r.height}")
        pending, chunks_run = todo, []
        try:
            while pending:
                if should_stop():
                    out.status = "interrupted"
                    break
                indices = pending[:tuner.chunk_size]
                self._note_new_graph_shape(loaded, r, len(indices), out)
                planned = len(chunks_run) + math.ceil(len(pending) / tuner.chunk_size)
                failure = None
                try:
                    finished = self._chunk(pipe, common, r, indices, out, on_progress, should_stop, started,
                                           (len(chunks_run) + 1, planned), preview)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    failure = one_line(exc)
                if failure is not None:  # outside the except block, so the failed attempt's tensors are freed
                    tuner.on_out_of_memory(failure, len(indices))
                    continue
                if not finished:
                    out.status = "interrupted"
                    break
                chunks_run.append(len(indices))
                pending = pending[len(indices):]
        except BaseException as exc:
            # The caller records what finished before the failure (status failed or interrupted).
            try:
                exc.partial_output = self._finish(out, tuner, chunks_run, started)
            except Exception:  # an exception type without attributes, or a device too broken to query
                pass
            raise
        finally:
            tuner.restore()
        return self._finish(out, tuner, chunks_run, started)

    def _note_new_graph_shape(self, loaded: LoadedModel, r: ResolvedRequest, images: int, out: RunOutput) -> None:
        """With CUDA graphs each new shape compiles first; the job's events say why it took longer."""
        if not (self.options.cuda_graphs and self.device.startswith("cuda")):
            return
        shape = (r.width, r.height, images * (2 if r.cfg > 1 else 1))  # guidance doubles the UNet batch
        if shape not in loaded.graph_shapes:
            loaded.graph_shapes.add(shape)
            out.events.append(f"CUDA graphs: first UNet call at {r.width}x{r.height}, batch {shape[2]}: compiling "
                              "for this shape (minutes for SDXL; later calls reuse it)")

    def _finish(self, out: RunOutput, tuner: MemoryTuner, chunks_run: list[int], started: float) -> RunOutput:
        out.events[:0] = [e for e in tuner.events if e not in out.events]
        out.generate_s = time.perf_counter() - started
        out.peak_memory_bytes = env.peak_memory(self.device)
        out.adjustments = tuner.adjustments(chunks_run)
        if out.adjustments:
            out.chunk_size = tuner.chunk_size
            out.warnings.append(f"ran out of memory and auto-tuned: chunks {chunks_run}"
                                + (", VAE slicing+tiling" if tuner.vae_reduced else "")
                                + (", model CPU offload" if tuner.offloaded else "")
                                + " (see events); the record keeps these settings for re-runs")
        return out

    def _chunk(self, pipe, common: dict, r: ResolvedRequest, indices: list[int], out: RunOutput,
               on_progress: ProgressFn, should_stop: StopFn, started: float, position: tuple[int, int],
               preview=None) -> bool:
        """Denoise and decode one chunk into `out`; False when a stop cut it short (its images are discarded)."""
        number, planned = position
        state = {"stopped_at": None}

        def callback(p, i, _t, kwargs):
            total = p.num_timesteps
            progress = {"step": i + 1, "total": total, "chunk": number, "chunks": planned,
                        "images_done": len(out.images), "batch": r.batch, "elapsed": time.perf_counter() - started}
            on_progress(progress)
            if preview is not None and preview[1].ready(final=i + 1 == total):
                preview[0](latents_to_rgb(kwargs["latents"]), progress)
            if should_stop() and i + 1 < total:
                p._interrupt = True  # diffusers skips the remaining steps
                state["stopped_at"] = i + 1
            return kwargs

        self._fault("denoise", indices=indices)
        # One CPU generator per image: image i depends on seed i alone, on any device.
        generators = [torch.Generator("cpu").manual_seed(r.seeds[i]) for i in indices]
        tensor_inputs = {"callback_on_step_end_tensor_inputs": ["latents"]} if preview else {}
        latents = self.call_pipeline(pipe, **common, num_images_per_prompt=len(indices), generator=generators,
                                     callback_on_step_end=callback, **tensor_inputs).images
        if state["stopped_at"] is not None:
            out.events.append(f"stopped at step {state['stopped_at']} of chunk {number}; "
                              f"its {len(indices)} unfinished image(s) discarded")
            return False
        injected = self._fault("latents", indices=indices, latents=latents)
        latents = latents if injected is None else injected
        self._fault("decode", indices=indices)
        labels = [f"image {i + 1} (seed {r.seeds[i]})" for i in indices]
        decoded = decode_guarded(pipe, latents, labels)
        out.events += decoded.events
        for i, label, image, problem in zip(indices, labels, decoded.images, decoded.problems, strict=True):
            if image is None:
                out.dropped.append({"index": i, "seed": r.seeds[i], "problem": problem})
                out.warnings.append(f"{label} not saved: {problem} even with the VAE in float32")
            else:
                out.images.append((i, r.seeds[i], image))
        if decoded.redecoded and not any(decoded.problems):
            out.warnings.append("the VAE overflowed (NaN/black) and was decoded again in float32 (slower); an "
                                "fp16-safe VAE such as madebyollin/sdxl-vae-fp16-fix avoids it")
        return True

    def environment(self) -> dict:
        return {**env.environment(self.device, self.dtype), "options": self.options.record()}

    def memory_facts(self, loaded: LoadedModel) -> dict:
        """For the memory check: real parameter bytes per component, free and in-use bytes on the device."""
        sizes = component_bytes(loaded.pipe)
        # On CUDA the allocator's figure is what the model (and earlier work) holds. On the CPU the
        # process's resident memory also holds the interpreter and anything else the kernel made,
        # none of which the job can reuse, so only the model's own weights count as already in place.
        in_use = in_use_bytes(self.device) if self.device.startswith("cuda") else sum(sizes.values())
        return {"component_bytes": sizes, "dtype": loaded.dtype_name,
                "vae_force_upcast": bool(loaded.pipe.vae.config.force_upcast),
                "free_bytes": free_memory_bytes(self.device), "in_use_bytes": in_use}

    def device_record(self) -> dict:
        return env.device_record(self.device)


def _call_arguments(r: ResolvedRequest) -> dict:
    """Pipeline keyword arguments for a request (all but the per-chunk generators and count)."""
    # An empty negative goes as None so SDXL uses its zeroed negative conditioning, as diffusers intends.
    # Latents out: the decode runs under the NaN guard (decode.py), step for step as the pipeline would.
    args = dict(prompt=r.styled_prompt, negative_prompt=r.effective_negative_prompt or None,
                num_inference_steps=r.steps, guidance_scale=r.cfg, output_type="latent")
    if r.mode != "txt2img":
        args.update(image=_load_rgb(r.init_image.path, (r.width, r.height)), strength=r.strength)
    if r.mode == "inpaint":
        args.update(mask_image=_load_mask(r.mask_image.path, (r.width, r.height)))
    if r.mode != "img2img":  # img2img takes its size from the init image
        args.update(width=r.width, height=r.height)
    return args


def _load_rgb(path: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return rgb if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS)


def _load_mask(path: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        mask = image.convert("L")
    return mask if mask.size == size else mask.resize(size, Image.Resampling.NEAREST)


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The kernel's one engine: every panel, API call and CLI command shares it.

    `SDXL_NB_AUTO_TUNE=1` turns out-of-memory auto-tuning on for it (the lab's panels set it on).
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            from sdxl_nb.jobs.pipeline import engine_options

            _ENGINE = Engine(auto_tune=settings.auto_tune(),
                             options=engine_options())
        return _ENGINE


def kernel_engine_options() -> EngineOptions:
    """The options jobs in this kernel run with (the kernel engine's, else the presets' default profile)."""
    with _ENGINE_LOCK:
        if _ENGINE is not None:
            return _ENGINE.options
    from sdxl_nb.jobs.pipeline import engine_options

    return engine_options()


def set_engine(engine) -> None:
    """Make `engine` the kernel's engine (e.g. replicas on several GPUs); None: a default one on next use."""
    global _ENGINE
    with _ENGINE_LOCK:
        _ENGINE = engine
