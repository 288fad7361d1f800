"""The only module that imports torch/diffusers: loads pipelines, swaps schedulers, runs jobs."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import torch
import transformers
from diffusers import (
    AutoencoderKL,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

import sdxl_nb
from sdxl_nb.errors import GenerationError, ModelUnavailableError
from sdxl_nb.registry import ModelInfo, locate_model
from sdxl_nb.request import ResolvedRequest
from sdxl_nb.tiny import content_revision, ensure_tiny_model

diffusers.utils.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

ProgressFn = Callable[[dict], None]
StopFn = Callable[[], bool]
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


@dataclass
class RunOutput:
    images: list[tuple[int, int, Image.Image]]  # (index in batch, seed, image), in batch order
    status: str  # "ok" or "interrupted"
    generate_s: float
    peak_memory_bytes: int | None
    scheduler: dict
    events: list[str]
    warnings: list[str]


def default_device() -> str:
    return os.environ.get("SDXL_NB_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: str) -> torch.dtype:
    name = os.environ.get("SDXL_NB_DTYPE")
    if name:
        return {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float32": torch.float32, "fp32": torch.float32}[name]
    return torch.float16 if device.startswith("cuda") else torch.float32


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _variant(folder: Path, dtype: torch.dtype) -> str | None:
    # Half-precision weights halve the read when the snapshot ships them.
    if dtype == torch.float32:
        return None
    return "fp16" if any(folder.glob("*.fp16.safetensors")) or any(folder.glob("*.fp16.bin")) else None


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
                loaded = self._load_components(info, Path(folder), revision, stage)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelUnavailableError(f"model {info.id!r} could not be loaded from {folder}: "
                                            f"{str(exc).splitlines()[0]}") from exc
            loaded.load_s = time.perf_counter() - started
            self.loaded[info.id] = loaded
            return loaded

    def _load_components(self, info: ModelInfo, folder: Path, revision: str, stage) -> LoadedModel:
        common = dict(torch_dtype=self.dtype, local_files_only=True)
        stage("text encoders")
        text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", variant=_variant(folder / "text_encoder", self.dtype), **common)
        text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
            folder / "text_encoder_2", variant=_variant(folder / "text_encoder_2", self.dtype), **common)
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        tokenizer_2 = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
        stage("UNet")
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", variant=_variant(folder / "unet", self.dtype), **common)
        stage("VAE")
        vae, vae_record, warnings = self._load_vae(info, folder, common)
        scheduler_cls = getattr(diffusers, _scheduler_class_name(folder))
        scheduler = scheduler_cls.from_pretrained(folder / "scheduler", local_files_only=True)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                         tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
                                         scheduler=scheduler, add_watermarker=False)
        stage(f"moving to {self.device}")
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return LoadedModel(info=info, revision=revision, path=str(folder), pipe=pipe, load_s=0.0,
                           vae=vae_record, warnings=warnings)

    def _load_vae(self, info: ModelInfo, folder: Path, common: dict):
        repo = info.preset.vae
        if repo:
            try:
                vae_folder, vae_revision = locate_model(repo, need_pipeline=False)
            except ModelUnavailableError:
                note = f"dedicated VAE {repo} is not in the local cache; using the model's own VAE"
                return self._own_vae(folder, common), None, [note] if self.dtype == torch.float16 else []
            vae = AutoencoderKL.from_pretrained(vae_folder, **common)
            return vae, {"id": repo, "revision": vae_revision}, []
        return self._own_vae(folder, common), None, []

    def _own_vae(self, folder: Path, common: dict) -> AutoencoderKL:
        return AutoencoderKL.from_pretrained(folder / "vae", variant=_variant(folder / "vae", self.dtype), **common)

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

    # ---- schedulers ----
    @staticmethod
    def make_scheduler(loaded: LoadedModel, cls_name: str | None, kwargs: dict):
        """A fresh scheduler from the model's own config (no weights, near-free)."""
        base = loaded.pipe.scheduler
        cls = type(base) if cls_name is None else getattr(diffusers, cls_name)
        return cls.from_config(base.config, **kwargs)

    # ---- running ----
    def prompt_warnings(self, loaded: LoadedModel, *texts: tuple[str, str]) -> list[str]:
        """Warn when CLIP's 77-token window cuts off the tail of a prompt."""
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
            should_stop: StopFn | None = None, chunk_size: int | None = None) -> RunOutput:
        """Generate every image of a request, chunk by chunk; a stop keeps the finished chunks."""
        with self.lock:
            return self._run(resolved, loaded, on_progress or (lambda _p: None), should_stop or (lambda: False),
                             chunk_size or resolved.batch)

    def _run(self, r: ResolvedRequest, loaded: LoadedModel, on_progress: ProgressFn, should_stop: StopFn,
             chunk_size: int) -> RunOutput:
        pipe = self.pipeline(loaded, r.mode)
        scheduler = self.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs)
        pipe.scheduler = scheduler
        scheduler_record = {"name": r.scheduler.name, "class": type(scheduler).__name__,
                            "config": _plain(dict(scheduler.config))}
        common = dict(prompt=r.styled_prompt, negative_prompt=r.effective_negative_prompt or None,
                      num_inference_steps=r.steps, guidance_scale=r.cfg, output_type="pil")
        if r.mode != "txt2img":
            common.update(image=_load_rgb(r.init_image.path, (r.width, r.height)), strength=r.strength)
        if r.mode == "inpaint":
            common.update(mask_image=_load_mask(r.mask_image.path, (r.width, r.height)))
        if r.mode != "img2img":
            common.update(width=r.width, height=r.height)
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        images: list[tuple[int, int, Image.Image]] = []
        events: list[str] = []
        status = "ok"
        started = time.perf_counter()
        chunks = [list(range(i, min(i + chunk_size, r.batch))) for i in range(0, r.batch, chunk_size)]
        for chunk_number, indices in enumerate(chunks):
            if should_stop():
                status = "interrupted"
                break
            state = {"stopped_at": None}

            def callback(p, i, _t, kwargs, indices=indices, chunk_number=chunk_number, state=state):
                total = p.num_timesteps
                on_progress({"step": i + 1, "total": total, "chunk": chunk_number + 1, "chunks": len(chunks),
                             "images_done": len(images), "batch": r.batch,
                             "elapsed": time.perf_counter() - started})
                if should_stop() and i + 1 < total:
                    p._interrupt = True
                    state["stopped_at"] = i + 1
                return kwargs

            generators = [torch.Generator("cpu").manual_seed(r.seeds[i]) for i in indices]
            try:
                output = pipe(**common, num_images_per_prompt=len(indices), generator=generators,
                              callback_on_step_end=callback)
            except torch.OutOfMemoryError as exc:
                raise GenerationError(f"out of memory on {self.device} at {r.width}x{r.height}, "
                                      f"{len(indices)} image(s) at once: {str(exc).splitlines()[0]}") from exc
            if state["stopped_at"] is not None:
                events.append(f"stopped at step {state['stopped_at']} of chunk {chunk_number + 1}; "
                              f"its {len(indices)} unfinished image(s) discarded")
                status = "interrupted"
                break
            images.extend((i, r.seeds[i], image) for i, image in zip(indices, output.images, strict=True))
        generate_s = time.perf_counter() - started
        return RunOutput(images=images, status=status, generate_s=generate_s, peak_memory_bytes=self.peak_memory(),
                         scheduler=scheduler_record, events=events, warnings=[])

    def peak_memory(self) -> int | None:
        if self.device.startswith("cuda"):
            return int(torch.cuda.max_memory_allocated())
        # On CPU the process's peak resident memory (Linux reports KiB).
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def environment(self) -> dict:
        """What ran: versions, device, precision; audits compare it with the current one."""
        cuda = self.device.startswith("cuda")
        return {
            "python": platform.python_version(),
            "platform": sys.platform,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "sdxl_nb": sdxl_nb.__version__,
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name() if cuda else None,
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "dtype": _dtype_name(self.dtype),
            "attention": "sdpa" if hasattr(torch.nn.functional, "scaled_dot_product_attention") else "default",
        }

    def device_record(self) -> dict:
        cuda = self.device.startswith("cuda")
        return {"type": "cuda" if cuda else self.device,
                "name": torch.cuda.get_device_name() if cuda else (platform.processor() or platform.machine())}

    @staticmethod
    def dtype_name(loaded: LoadedModel) -> str:
        return _dtype_name(loaded.pipe.unet.dtype)


def _scheduler_class_name(folder: Path) -> str:
    import json

    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return index["scheduler"][1]


def _load_rgb(path: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return rgb if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS)


def _load_mask(path: str, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as image:
        mask = image.convert("L")
    return mask if mask.size == size else mask.resize(size, Image.Resampling.NEAREST)


def _plain(value):
    """Scheduler configs hold tuples, numpy values and infinities; make them JSON-able and stable."""
    if isinstance(value, dict):
        # "_"-keys are diffusers bookkeeping (version, which values were defaults), not settings.
        return {str(k): _plain(v) for k, v in sorted(value.items()) if not str(k).startswith("_")}
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"  # JSON has no infinity: stored as text
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The kernel's one engine: every panel, API call and CLI command shares it."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Engine()
        return _ENGINE
