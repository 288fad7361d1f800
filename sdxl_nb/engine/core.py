"""The Engine: loads pipelines once, derives img2img/inpaint from them, swaps schedulers, runs jobs."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline
from PIL import Image

from sdxl_nb.engine import environment as env
from sdxl_nb.engine.loading import default_device, default_dtype, dtype_name, load_pipeline
from sdxl_nb.engine.preview import Throttle, latents_to_rgb
from sdxl_nb.errors import GenerationError, ModelUnavailableError
from sdxl_nb.registry import ModelInfo, locate_model
from sdxl_nb.request import ResolvedRequest
from sdxl_nb.tiny import content_revision, ensure_tiny_model

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]
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
    derived: dict = field(default_factory=dict)  # mode -> pipeline sharing pipe's modules

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.pipe.unet.dtype)


@dataclass
class RunOutput:
    images: list[tuple[int, int, Image.Image]]  # (index in batch, seed, image), in batch order
    status: str  # "ok" or "interrupted"
    generate_s: float
    peak_memory_bytes: int | None
    scheduler: dict
    events: list[str]
    warnings: list[str]


class Engine:
    """Loaded pipelines (a bounded cache) and the lock that keeps one job at a time on the device."""

    def __init__(self, device: str | None = None, dtype: torch.dtype | None = None, max_loaded: int = 1):
        self.device = device or default_device()
        self.dtype = dtype or default_dtype(self.device)
        self.max_loaded = max_loaded
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self.lock = threading.RLock()

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
                                            f"{str(exc).splitlines()[0]}") from exc
            loaded = LoadedModel(info=info, revision=revision, path=str(folder), pipe=pipe,
                                 load_s=time.perf_counter() - started, vae=vae, warnings=warnings)
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
        base = loaded.pipe.scheduler
        cls = type(base) if cls_name is None else getattr(diffusers, cls_name)
        return cls.from_config(base.config, **kwargs)

    # ---- running ----
    @staticmethod
    def prompt_warnings(loaded: LoadedModel, *texts: tuple[str, str]) -> list[str]:
        """Warn when CLIP's token window cuts off the tail of a prompt."""
        warnings = []
        tokenizer = loaded.pipe.tokenizer
        limit = tokenizer.model_max_length
        for name, text in texts:
            ids = tokenizer(text, truncation=False).input_ids
            if len(ids) > limit:
                kept = tokenizer.decode(ids[1:limit - 1])
                warnings.append(f"{name} is {len(ids) - 2} tokens; CLIP reads {limit - 2}: everything after "
                                f"{kept[-40:]!r} is ignored")
        return warnings

    def run(self, resolved: ResolvedRequest, loaded: LoadedModel, *, on_progress: ProgressFn | None = None,
            should_stop: StopFn | None = None, chunk_size: int | None = None, on_preview: PreviewFn | None = None,
            preview_interval_s: float = 0.5) -> RunOutput:
        """Generate every image of a request, chunk by chunk; a stop keeps the finished chunks.

        `on_preview`, when given, gets a cheap RGB approximation of the latents at most once per
        `preview_interval_s` (and at each chunk's last step).
        """
        with self.lock:
            return self._run(resolved, loaded, on_progress or (lambda _p: None), should_stop or (lambda: False),
                             chunk_size or resolved.batch, on_preview, preview_interval_s)

    def _run(self, r: ResolvedRequest, loaded: LoadedModel, on_progress: ProgressFn, should_stop: StopFn,
             chunk_size: int, on_preview: PreviewFn | None = None, preview_interval_s: float = 0.5) -> RunOutput:
        pipe = self.pipeline(loaded, r.mode)
        scheduler = self.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs)
        pipe.scheduler = scheduler
        scheduler_record = {"name": r.scheduler.name, "class": type(scheduler).__name__,
                            "config": env.plain_config(dict(scheduler.config))}
        common = _call_arguments(r)
        env.reset_peak_memory(self.device)
        images: list[tuple[int, int, Image.Image]] = []
        events: list[str] = []
        status = "ok"
        started = time.perf_counter()
        chunks = [list(range(i, min(i + chunk_size, r.batch))) for i in range(0, r.batch, chunk_size)]
        throttle = Throttle(preview_interval_s)
        preview_args = {"callback_on_step_end_tensor_inputs": ["latents"]} if on_preview else {}
        for chunk_number, indices in enumerate(chunks):
            if should_stop():
                status = "interrupted"
                break
            state = {"stopped_at": None}

            def callback(p, i, _t, kwargs, chunk_number=chunk_number, state=state):
                total = p.num_timesteps
                progress = {"step": i + 1, "total": total, "chunk": chunk_number + 1, "chunks": len(chunks),
                            "images_done": len(images), "batch": r.batch, "elapsed": time.perf_counter() - started}
                on_progress(progress)
                if on_preview is not None and throttle.ready(final=i + 1 == total):
                    on_preview(latents_to_rgb(kwargs["latents"]), progress)
                if should_stop() and i + 1 < total:
                    p._interrupt = True  # diffusers skips the remaining steps
                    state["stopped_at"] = i + 1
                return kwargs

            # One CPU generator per image: image i depends on seed i alone, on any device.
            generators = [torch.Generator("cpu").manual_seed(r.seeds[i]) for i in indices]
            try:
                output = pipe(**common, num_images_per_prompt=len(indices), generator=generators,
                              callback_on_step_end=callback, **preview_args)
            except torch.OutOfMemoryError as exc:
                raise GenerationError(f"out of memory on {self.device} at {r.width}x{r.height}, "
                                      f"{len(indices)} image(s) at once: {str(exc).splitlines()[0]}") from exc
            if state["stopped_at"] is not None:
                events.append(f"stopped at step {state['stopped_at']} of chunk {chunk_number + 1}; "
                              f"its {len(indices)} unfinished image(s) discarded")
                status = "interrupted"
                break
            images.extend((i, r.seeds[i], image) for i, image in zip(indices, output.images, strict=True))
        return RunOutput(images=images, status=status, generate_s=time.perf_counter() - started,
                         peak_memory_bytes=env.peak_memory(self.device), scheduler=scheduler_record, events=events,
                         warnings=[])

    def environment(self) -> dict:
        return env.environment(self.device, self.dtype)

    def device_record(self) -> dict:
        return env.device_record(self.device)


def _call_arguments(r: ResolvedRequest) -> dict:
    """Pipeline keyword arguments for a request (all but the per-chunk generators and count)."""
    # An empty negative goes as None so SDXL uses its zeroed negative conditioning, as diffusers intends.
    args = dict(prompt=r.styled_prompt, negative_prompt=r.effective_negative_prompt or None,
                num_inference_steps=r.steps, guidance_scale=r.cfg, output_type="pil")
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
    """The kernel's one engine: every panel, API call and CLI command shares it."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE
