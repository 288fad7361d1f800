"""The local Engine: loads pipelines once, derives the other modes from them, swaps schedulers, runs plans."""

from __future__ import annotations

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

import sdxl_nb.backends.local.environment as env
from sdxl_nb import settings
from sdxl_nb.backends.base import Capabilities, RunHooks, RunOutput, RunPlan
from sdxl_nb.backends.load_events import model_loaded
from sdxl_nb.backends.local.checkpoint_load import config_for as checkpoint_config
from sdxl_nb.backends.local.checkpoint_load import load_checkpoint_model
from sdxl_nb.backends.local.conditioning import PromptEncoder, conditioning_record
from sdxl_nb.backends.local.inpaint_model import is_inpainting, pipeline_mode
from sdxl_nb.backends.local.ip_adapter import apply_ip_adapter, check_ip_adapter
from sdxl_nb.backends.local.loading import DTYPES, default_device, default_dtype, dtype_name, load_pipeline
from sdxl_nb.backends.local.lora import LoraSwitch
from sdxl_nb.backends.local.mixing import MIXING_PIPELINES
from sdxl_nb.backends.local.networks import check_networks, embedding_vectors, lora_problem
from sdxl_nb.backends.local.oom import component_bytes, free_memory_bytes, in_use_bytes
from sdxl_nb.backends.local.run_loop import RunLoop
from sdxl_nb.backends.local.speed import apply_options, fp8_problem, set_vae_savers, warm_up
from sdxl_nb.config.embedded_models import embedded_folder
from sdxl_nb.config.options import EngineOptions
from sdxl_nb.config.registry import ModelInfo, locate_model
from sdxl_nb.config.tiny import content_revision
from sdxl_nb.errors import InputError, ModelUnavailableError, one_line
from sdxl_nb.request.resolve import ResolvedRequest

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
    lora: LoraSwitch | None = None  # the LoRA adapters loaded into this model (made on first use)
    vectors: dict = field(default_factory=dict)  # embedding sha256 -> (clip_l, clip_g) vectors on the device
    refiners: dict = field(default_factory=dict)  # refiner id -> refiner.LoadedRefiner sharing this model's modules
    ip_adapter: object = None  # the IP-Adapter switch (ip_adapter.IpAdapterSwitch), made on first use
    controlnets: dict = field(default_factory=dict)  # (path, sha256) -> ControlNetModel on the device

    def lora_switch(self) -> LoraSwitch:
        if self.lora is None:
            self.lora = LoraSwitch(self.pipe)
        return self.lora

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.pipe.unet.dtype)


def seed_brownian_noise(scheduler, generators) -> None:
    """DPM++ SDE draws its noise from a Brownian tree; diffusers seeds that tree from the global RNG unless told, so
    a job would never come back. A1111 (KDiffusionSampler.create_noise_sampler) and ComfyUI (sample_dpmpp_sde's
    BrownianTreeNoiseSampler) seed it with each image's seed: so does every call here, from its per-image
    generators (initial_seed is the image's seed, whatever the generator has drawn since)."""
    if not hasattr(scheduler, "noise_sampler_seed") or not isinstance(generators, list) or not generators:
        return
    scheduler.noise_sampler_seed = [generator.initial_seed() for generator in generators]
    scheduler.noise_sampler = None  # a tree made for another call's images is never reused


def mode_pipeline(loaded: LoadedModel, mode: str, mixing: bool = False):
    """The pipeline of a mode (with `mixing`: per-image noise and conditioning) sharing the loaded modules (no copy,
    same dtype); made once per model and mode."""
    mode = pipeline_mode(loaded.pipe, mode)  # an inpainting UNet runs every mode as an inpaint
    if mode == "txt2img" and not mixing:
        return loaded.pipe
    key = f"mixing-{mode}" if mixing else mode
    if key not in loaded.derived:
        classes = MIXING_PIPELINES if mixing else _PIPELINE_CLASSES
        if mode not in classes:
            raise ValueError(f"per-image prompts or noise need txt2img or img2img, not {mode}")
        # Constructing from the components shares every module; from_pipe would cast to float32.
        derived = classes[mode](**loaded.pipe.components, add_watermarker=False)
        derived.set_progress_bar_config(disable=True)
        loaded.derived[key] = derived
    return loaded.derived[key]


def fresh_scheduler(loaded: LoadedModel, cls_name: str | None, kwargs: dict):
    """A fresh scheduler from the model's own config (no weights, near-free)."""
    # From the model's own scheduler: the pipeline's is whatever the previous job swapped in.
    base = loaded.own_scheduler or loaded.pipe.scheduler
    cls = type(base) if cls_name is None else getattr(diffusers, cls_name)
    return cls.from_config(base.config, **kwargs)


class Engine:
    """This machine's backend: loaded pipelines (a bounded cache) and the lock that keeps one job at a time on the
    device. It implements the whole contract (sdxl_nb.backends.base)."""

    name = "local"
    capabilities = Capabilities(previews=True, memory_facts=True, configure=True, scheduler_config=True,
                                noise_mix=True, prompt_blend=True, prompt_weighting=True, lora=True, embeddings=True,
                                local_models=True, rerun=True, refiner=True, hires=True, ip_adapter=True, controlnet=True)

    def __init__(self, device: str | None = None, dtype: torch.dtype | None = None, max_loaded: int = 1,
                 auto_tune: bool = False, options: EngineOptions | None = None):
        self.device = device or default_device()
        self.options = options or EngineOptions()
        self.check_options(self.options)
        self.dtype = dtype or (DTYPES[self.options.dtype] if self.options.dtype else default_dtype(self.device))
        self.max_loaded = max_loaded
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self.lock = threading.RLock()
        self.auto_tune = auto_tune  # on out of memory: retry lighter settings (opt-in; the lab turns it on)
        # Test hook: called as fault_hook(stage, **context) at "denoise", "latents" (may return new latents)
        # and "decode"; tests raise out-of-memory errors or inject NaN there. None in normal use.
        self.fault_hook: Callable[..., object] | None = None
        self._graph_thread: ThreadPoolExecutor | None = None
        self.preview_interval_s = 0.5  # step previews at most this often (each chunk's last step always)

    def call_pipeline(self, pipe, **kwargs):
        """One pipeline call; with the cuda_graphs option, always on the engine's one graph thread.

        torch keeps CUDA-graph trees per host thread, and before torch 2.12 a UNet captured in one thread
        asserted when called from another (pytorch issue 123177). The lab runs jobs in its queue's thread
        and the notebook in the main one, so every call of a graph-compiled model goes through one thread.
        """
        seed_brownian_noise(pipe.scheduler, kwargs.get("generator"))
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
        """Change options; models whose modules an option changes are unloaded and reload with it. Options this
        device cannot run are refused (InputError) and nothing changes."""
        self.check_options(options)
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

    def check_options(self, options: EngineOptions) -> None:
        """Refuse, in one line (InputError), options this device cannot run."""
        problem = fp8_problem(self.device) if options.fp8 else None
        if problem:
            raise InputError(problem)

    # ---- loading ----
    def load(self, info: ModelInfo, on_stage: Callable[[str], None] | None = None) -> LoadedModel:
        """Load a model once per engine; later calls return the cached pipeline."""
        stage = on_stage or (lambda _name: None)
        with self.lock:
            if info.id in self.loaded and (info.source != "checkpoint" or self.loaded[info.id].revision == info.revision):
                self.loaded.move_to_end(info.id)
                return self.loaded[info.id]
            self.loaded.pop(info.id, None)  # a checkpoint file whose content changed: loaded again
            started = time.perf_counter()
            if info.source == "embedded":
                stage("building the embedded model")
                folder = embedded_folder(info.id)
                revision = content_revision(folder)
            elif info.source == "checkpoint":
                folder, revision = Path(info.path), info.revision
            else:
                folder, revision = locate_model(info.id)
            while len(self.loaded) >= self.max_loaded:
                self.loaded.popitem(last=False)
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
            try:
                loader = load_checkpoint_model if info.source == "checkpoint" else load_pipeline
                pipe, vae, warnings = loader(info, Path(folder), self.device, self.dtype, stage)
            except ModelUnavailableError:
                raise  # already one line naming the file
            except (OSError, ValueError, KeyError) as exc:
                raise ModelUnavailableError(f"model {info.id!r} could not be loaded from {folder}: "
                                            f"{one_line(exc)}") from exc
            events = apply_options(pipe, self.options, self.device)
            load_s = time.perf_counter() - started
            warmup = self.options.warmup and not is_inpainting(pipe)  # its call needs an image and a mask
            if warmup:
                stage("warming up")
                width, height = info.preset.native_size or (1024, 1024)
                took = warm_up(pipe, width, height, call=self.call_pipeline)
                events.append(f"warm-up run at {width}x{height} took {took:.2f} s")
            loaded = LoadedModel(info=info, revision=revision, path=str(folder), pipe=pipe, load_s=load_s,
                                 vae=vae, warnings=warnings, events=events, own_scheduler=pipe.scheduler)
            if warmup:
                loaded.graph_shapes.add((width, height, 2))  # the warm-up ran with guidance at this size
            self.loaded[info.id] = loaded
        model_loaded(info.id)  # outside the lock: a listener may ask what is loaded
        return loaded

    def pipeline(self, loaded: LoadedModel, mode: str, *, mixing: bool = False, controls: tuple = ()):
        """The pipeline for a mode (with `mixing`: per-image noise and conditioning; with `controls`: those
        ControlNets); every one shares the loaded modules (no copy, same dtype)."""
        if controls:
            from sdxl_nb.backends.local.controlnet import controlnet_pipeline

            return controlnet_pipeline(loaded, mode, controls)
        return mode_pipeline(loaded, mode, mixing)

    @staticmethod
    def make_scheduler(loaded: LoadedModel, cls_name: str | None, kwargs: dict):
        return fresh_scheduler(loaded, cls_name, kwargs)

    # ---- running ----
    def describe_prompts(self, loaded: LoadedModel, plan: RunPlan) -> dict:
        """The record's `conditioning`: chunks, tokens and parsed weights of each prompt (tokenizers only)."""
        encoder = PromptEncoder(loaded.pipe, self.embedding_vectors(loaded, plan.request))
        return conditioning_record(encoder, plan)

    @staticmethod
    def embedding_vectors(loaded: LoadedModel, r: ResolvedRequest) -> dict:
        """name -> (clip_l, clip_g) vectors of the request's embeddings (read once per file content)."""
        return embedding_vectors(loaded, r.embeddings)

    def run(self, plan: RunPlan, loaded: LoadedModel, hooks: RunHooks | None = None) -> RunOutput:
        """Generate every image of a plan, chunk by chunk (see run_loop.RunLoop); one job at a time on the device.

        `plan.auto_tune` (default: the engine's setting) retries lighter settings on out of memory instead of
        failing at once. Previews come at most once per `preview_interval_s` (and at each chunk's last step).
        """
        with self.lock:
            auto_tune = self.auto_tune if plan.auto_tune is None else plan.auto_tune
            events, warnings = [], []
            if plan.request.loras or loaded.lora is not None:  # a job without LoRAs turns loaded ones off
                events, warnings = loaded.lora_switch().apply(plan.request.loras)
            events += apply_ip_adapter(loaded, plan.request.ip_adapter)  # a job without one turns it off
            out = RunLoop(self, loaded, plan, hooks or RunHooks(), auto_tune).run()
            out.events[:0], out.warnings[:0] = events, warnings
            return out

    def check_networks(self, info: ModelInfo, r: ResolvedRequest) -> None:
        """Refuse, before any work, LoRAs that do not fit the model, embeddings of another width, IP-Adapters and
        ControlNets of another model family, an upscaler file that is no upscaler, and a refiner switch that leaves
        either model no step (one line each)."""
        clash = [name for name in ("fuse_qkv", "fp8") if getattr(self.options, name)] if r.loras else []
        if clash:
            raise InputError(f"LoRAs cannot run with the {' and '.join(clash)} engine option (it replaces the "
                             "layers a LoRA attaches to); configure the engine without it")
        check_networks(r, info.id, **self._model_for_checks(info))
        if r.ip_adapter is not None:
            check_ip_adapter(r.ip_adapter, info.id, self.options, **self._model_for_checks(info))
        if r.controlnets:
            from sdxl_nb.backends.local.controlnet import check_controlnets

            check_controlnets(r, **self._model_for_checks(info))
        if r.hires is not None and r.hires.upscaler.kind == "model":
            from sdxl_nb.backends.local.upscale import check_upscaler

            check_upscaler(r.hires.upscaler)  # loaded once here (by content); the hires pass reuses it
        if r.refiner is not None and r.refiner_switch < 1:
            self._check_refiner_split(info, r)

    def _check_refiner_split(self, info: ModelInfo, r: ResolvedRequest) -> None:
        """A refiner switch that leaves the base or the refiner no step of this run's schedule: one line before any
        work, naming the switches that work (the split is the run's own: refiner_split.split_steps)."""
        from types import SimpleNamespace

        from sdxl_nb.backends.local.loading import model_scheduler
        from sdxl_nb.backends.local.refiner_split import split_problem

        loaded = self.loaded.get(info.id)
        if loaded is None:  # the model's own scheduler from its config file, as loading the model builds it
            try:
                loaded = SimpleNamespace(own_scheduler=model_scheduler(self._model_for_checks(info)["folder"]))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return  # an unreadable model folder is the load's to report, with its own line
        problem = split_problem(self.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs), r)
        if problem:
            raise InputError(problem)

    def lora_problem(self, info: ModelInfo, lora) -> str | None:
        """Why a LoRA does not fit a model (one line), or None; the model need not be loaded."""
        return lora_problem(lora, info.id, **self._model_for_checks(info))

    def _model_for_checks(self, info: ModelInfo) -> dict:
        loaded = self.loaded.get(info.id)
        if loaded is not None:
            return {"loaded": loaded}
        if info.source == "checkpoint":  # its architecture's config folder describes its layers
            return {"folder": checkpoint_config(info.path)}
        return {"folder": embedded_folder(info.id) if info.source == "embedded" else Path(locate_model(info.id)[0])}

    def fault(self, stage: str, **context):
        # The test hook: tests raise out-of-memory errors or return NaN latents at chosen stages.
        return self.fault_hook(stage, **context) if self.fault_hook else None

    def note_new_graph_shape(self, loaded: LoadedModel, r: ResolvedRequest, images: int, out: RunOutput) -> None:
        """With CUDA graphs each new shape compiles first; the job's events say why it took longer."""
        if not (self.options.cuda_graphs and self.device.startswith("cuda")):
            return
        shape = (r.width, r.height, images * (2 if r.cfg > 1 else 1))  # guidance doubles the UNet batch
        if shape not in loaded.graph_shapes:
            loaded.graph_shapes.add(shape)
            out.events.append(f"CUDA graphs: first UNet call at {r.width}x{r.height}, batch {shape[2]}: compiling "
                              "for this shape (minutes for SDXL; later calls reuse it)")

    @staticmethod
    def backend_record(_model_id: str) -> None:
        return None  # this machine's engine: the record's device and env say everything

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


_ENGINE: Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> Engine:
    """The kernel's one engine: every panel, API call and CLI command shares it.

    `SDXL_NB_AUTO_TUNE=1` turns out-of-memory auto-tuning on for it (the lab's panels set it on).
    """
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            from sdxl_nb.config.engine_profiles import engine_options

            _ENGINE = Engine(auto_tune=settings.auto_tune(),
                             options=engine_options())
        return _ENGINE


def kernel_engine_options() -> EngineOptions:
    """The options jobs in this kernel run with (the kernel engine's, else the presets' default profile)."""
    with _ENGINE_LOCK:
        if _ENGINE is not None:
            return _ENGINE.options
    from sdxl_nb.config.engine_profiles import engine_options

    return engine_options()


def set_engine(engine) -> None:
    """Make `engine` the kernel's engine (e.g. replicas on several GPUs); None: a default one on next use."""
    global _ENGINE
    with _ENGINE_LOCK:
        _ENGINE = engine
