"""The backend contract: what every backend (local engine, GPU replicas, ComfyUI) takes, reports and returns; no torch.

A backend loads a model and runs a `RunPlan` (the resolved request plus one `ImageSpec` per image)
with `RunHooks` (progress, stop, previews, each finished chunk's images), and returns a `RunOutput`.
What a backend can do beyond that is declared in its `Capabilities`; callers ask the declaration,
never `hasattr`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sdxl_nb.request.resolve import ResolvedRequest

ProgressFn = Callable[[dict], None]  # {"step", "total", "chunk", "chunks", "images_done", "batch", "elapsed", ...}
StopFn = Callable[[], bool]
PreviewFn = Callable[[Any, dict], None]  # (approximate RGB of the current latents as a PIL image, progress)
# A finished chunk: its (index, seed, PIL image) and the scheduler record that made them ({"name", "class", "config"}).
ImagesFn = Callable[[list[tuple[int, int, Any]], dict], None]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond loading a model and running plain images."""

    previews: bool = False  # on_preview receives step previews
    memory_facts: bool = False  # memory_facts(loaded) gives module sizes and free memory for the pre-check
    # configure(options) applies engine options (check_options(options) refuses what the device cannot run);
    # auto_tune is honoured
    configure: bool = False
    scheduler_config: bool = False  # runs any diffusers scheduler class with a full recorded config
    noise_mix: bool = False  # slerps an image's initial noise toward another seed's (animate slerp)
    prompt_blend: bool = False  # blends the conditioning of two prompts (animate prompt travel)
    # A1111 prompt syntax read as A1111 does: (word:1.3), (word), [word], BREAK, prompts of any length in
    # 75-token chunks; describe_prompts(loaded, plan) gives the record's chunk counts and parsed weights.
    prompt_weighting: bool = False
    lora: bool = False  # applies LoRA files at their weights (the request's `loras`)
    embeddings: bool = False  # reads textual-inversion embeddings named in prompts (the request's `embeddings`)
    ip_adapter: bool = False  # runs an IP-Adapter with its image encoder (the request's `ip_adapter`)
    local_models: bool = True  # loads from this machine's cache (the model must be available here)
    rerun: bool = True  # audit can re-run its jobs on it
    refiner: bool = False  # hands the last steps to a refiner model at a switch point (the request's `refiner`)
    hires: bool = False  # runs the hires fix's second pass (the request's `hires`: latent, Lanczos or model upscale)
    controlnet: bool = False  # guides plain batches with ControlNets (the request's `controlnets`)
    img2img: bool = True  # starts from an init image at a strength (mode img2img)
    inpaint: bool = True  # repaints a masked part of an init image (mode inpaint)

    def lacks(self, name: str) -> bool:
        return not getattr(self, name)

    def runs(self) -> list[str]:
        """What it runs, as users name it, in FEATURES order (plain txt2img batches and seed walks always)."""
        return ["txt2img", *(text for name, text in FEATURES.items() if not self.lacks(name)), "seed-walk animations"]

    def lacking(self) -> list[str]:
        """What it does not run, as users name it, in FEATURES order."""
        return [text for name, text in FEATURES.items() if self.lacks(name)]


# Every capability a plan can need, as a refusal names it: the one source of what a backend says it runs and
# what it does not (check_plan's refusal is derived from it and the backend's declared Capabilities).
FEATURES = {
    "img2img": "img2img", "inpaint": "inpaint",
    "lora": "LoRAs", "embeddings": "textual-inversion embeddings",
    "refiner": "a refiner model (base + refiner hand-off)", "hires": "hires fix (a second, upscaled pass)",
    "controlnet": "ControlNets",
    "prompt_weighting": "A1111 prompt weighting ((word:1.3), (word), [word], BREAK, \\( escapes)",
    "ip_adapter": "IP-Adapter (an image as part of the prompt; stock ComfyUI nodes have none)",
    "noise_mix": "slerp between seeds' noise (animation mode slerp)",
    "prompt_blend": "prompt travel (blending two prompts' conditioning)",
}


@dataclass(frozen=True)
class ImageSpec:
    """One image of a run: which, its seed, the prompt it is conditioned on, and what it travels toward."""

    index: int  # position in the job (batch index or frame number)
    seed: int  # its CPU generator seed: its initial noise and any ancestral-sampler noise
    prompt: str  # the styled prompt sent for it
    seed_end: int | None = None  # noise mix: the initial noise is slerped toward this seed's by t
    prompt_end: str | None = None  # prompt blend: the conditioning moves toward this prompt's by t
    t: float | None = None  # 0: seed / prompt exactly; 1: seed_end / prompt_end exactly

    @property
    def mixes_noise(self) -> bool:
        return self.seed_end is not None

    @property
    def blends_prompt(self) -> bool:
        return self.prompt_end is not None


def recorded_calls(entries: list[dict]) -> tuple[tuple[int, ...], ...] | None:
    """How a record's images (or an animation's frames) were grouped into pipeline calls, as positions in index
    order: batching can move a pixel's last bit, so a re-run repeats the same calls. None when an entry does not
    say its call (a record written before calls were recorded)."""
    if not all(isinstance(e.get("call"), int) and isinstance(e.get("index"), int) for e in entries):
        return None
    calls: dict[int, list[int]] = {}
    for position, entry in enumerate(sorted(entries, key=lambda e: e["index"])):
        calls.setdefault(entry["call"], []).append(position)
    return tuple(tuple(positions) for _call, positions in sorted(calls.items()))


@dataclass(frozen=True)
class RunPlan:
    """What a backend runs: shared settings (the resolved request) and every image to make."""

    request: ResolvedRequest
    images: tuple[ImageSpec, ...]
    chunk_size: int | None = None  # images per pipeline call; None: the backend picks as many as fit
    calls: tuple[tuple[int, ...], ...] | None = None  # a fixed grouping (positions in images) to repeat a run
    auto_tune: bool | None = None  # on out of memory retry lighter settings; None: the backend's setting
    all_texts: tuple[str, ...] | None = None  # a part of a larger plan (replicas): the whole plan's texts

    @classmethod
    def for_request(cls, resolved: ResolvedRequest, *, chunk_size: int | None = None,
                    indices: list[int] | None = None, auto_tune: bool | None = None) -> RunPlan:
        """The plan of a plain job: image i has seed i of the request and its styled prompt."""
        chosen = range(resolved.batch) if indices is None else indices
        images = tuple(ImageSpec(index=i, seed=resolved.seeds[i], prompt=resolved.styled_prompt) for i in chosen)
        return cls(request=resolved, images=images, chunk_size=chunk_size, auto_tune=auto_tune)

    @property
    def plain(self) -> bool:
        """Every image shares the request's prompt and its own seed's noise (a plain batch)."""
        return all(spec.prompt == self.request.styled_prompt and not spec.mixes_noise and not spec.blends_prompt
                   for spec in self.images)

    def needs(self) -> list[str]:
        """The capabilities this plan needs beyond plain images."""
        from sdxl_nb.request.prompt_syntax import is_plain

        wanted = []
        if getattr(self.request, "mode", "txt2img") in ("img2img", "inpaint"):
            wanted.append(self.request.mode)
        if any(spec.mixes_noise for spec in self.images):
            wanted.append("noise_mix")
        if any(spec.blends_prompt for spec in self.images):
            wanted.append("prompt_blend")
        if not all(is_plain(text) for text in self.texts()):
            wanted.append("prompt_weighting")
        if self.request.loras:
            wanted.append("lora")
        if self.request.embeddings:
            wanted.append("embeddings")
        if self.request.refiner is not None:
            wanted.append("refiner")
        if getattr(self.request, "hires", None) is not None:
            wanted.append("hires")
        if getattr(self.request, "ip_adapter", None) is not None:
            wanted.append("ip_adapter")
        if self.request.controlnets:
            wanted.append("controlnet")
        return wanted

    def texts(self) -> list[str]:
        """Every prompt text the plan conditions on (the negative included), each once, in a fixed order."""
        if self.all_texts is not None:
            return list(self.all_texts)
        texts = [self.request.styled_prompt, self.request.effective_negative_prompt]
        for spec in self.images:
            texts += [spec.prompt] + ([spec.prompt_end] if spec.prompt_end is not None else [])
        return list(dict.fromkeys(texts))


@dataclass
class RunHooks:
    """The caller's side of a run; every hook is optional and none may stop the backend by raising."""

    on_progress: ProgressFn | None = None
    should_stop: StopFn | None = None
    on_preview: PreviewFn | None = None
    on_images: ImagesFn | None = None  # called as each chunk finishes, so its images are saved at once

    def progress(self, progress: dict) -> None:
        if self.on_progress:
            self.on_progress(progress)

    def stop_requested(self) -> bool:
        return bool(self.should_stop and self.should_stop())

    def images_done(self, images: list[tuple[int, int, Any]], scheduler: dict) -> None:
        if self.on_images and images:
            self.on_images(images, scheduler)


@dataclass
class RunOutput:
    images: list  # (index, seed, PIL image), in index order
    status: str  # "ok" or "interrupted"
    generate_s: float
    peak_memory_bytes: int | None
    scheduler: dict  # {"name", "class", "config"}: what ran
    events: list[str]
    warnings: list[str]
    chunk_size: int | None = None  # images per pipeline call at the end (auto-tuning may lower it)
    calls: list[list[int]] = field(default_factory=list)  # image indices of each finished pipeline call
    adjustments: dict | None = None  # what auto-tuning changed ({"chunks", "vae_slicing", ...}); None: nothing
    dropped: list[dict] = field(default_factory=list)  # images not saved (NaN/black): index, seed, problem
    error: str | None = None  # set when some images failed and others were kept (replicas, a remote server)


class LoadedModel(Protocol):
    """What a backend's load returns, as the job pipeline reads it."""

    revision: str | None
    load_s: float
    dtype_name: str | None
    vae: dict | None
    warnings: list[str]
    events: list[str]


@runtime_checkable
class Backend(Protocol):
    """The contract. Optional methods exist only where `capabilities` declares them."""

    capabilities: Capabilities
    device: str
    loaded: Mapping[str, Any]

    def load(self, info, on_stage: Callable[[str], None] | None = None) -> LoadedModel: ...

    def run(self, plan: RunPlan, loaded, hooks: RunHooks) -> RunOutput: ...

    def device_record(self) -> dict: ...

    def environment(self) -> dict: ...

    def backend_record(self, model_id: str) -> dict | None:
        """The record's `backend` field (None for this machine's engine)."""
        ...


def check_plan(backend: Backend, plan: RunPlan) -> None:
    """Refuse, before any work, a plan the backend cannot run (one line naming what it lacks)."""
    from sdxl_nb.errors import InputError

    if plan.request.controlnets and not plan.plain:
        raise InputError("ControlNets guide plain batches (one prompt, each image its own seed); per-image prompts "
                         "and noise mixes (animations, prompt travel) cannot take them")
    from sdxl_nb.config.inpainting import inpainting_model_problem

    problem = inpainting_model_problem(plan)
    if problem:
        raise InputError(problem)
    refuse_lacking(backend, plan.needs())


def request_needs(request) -> list[str]:
    """The capabilities an unresolved request (GenerationRequest) asks for by name, known before anything is resolved,
    built or loaded (resolving an IP-Adapter builds the embedded tiny one; a LoRA name reads its file)."""
    wanted = []
    if getattr(request, "init_image", None) is not None:
        wanted.append("inpaint" if getattr(request, "mask_image", None) is not None else "img2img")
    # Only fields whose presence always means the feature (a refiner at switch 1 or a hires scale of 1 may resolve
    # to none: check_plan judges those once resolved, before any work).
    for name, field_name in (("lora", "loras"), ("ip_adapter", "ip_adapter"), ("controlnet", "controlnets")):
        if getattr(request, field_name, None):
            wanted.append(name)
    return wanted


def check_request(backend, request) -> None:
    """Refuse, before the request is resolved (nothing built, read or loaded), what it names that the backend
    cannot run; the same one line as check_plan. None as backend: this machine's engine, which runs everything."""
    if backend is not None:
        refuse_lacking(backend, request_needs(request))


def refuse_lacking(backend, needs: list[str]) -> None:
    """One InputError line naming what of `needs` the backend lacks, what it runs and what it does not."""
    from sdxl_nb.errors import InputError

    capabilities = backend.capabilities
    missing = [name for name in dict.fromkeys(needs) if capabilities.lacks(name)]
    if missing:
        lacking = capabilities.lacking()
        raise InputError(f"the {backend_name(backend)} backend cannot run {' or '.join(FEATURES[m] for m in missing)}"
                         f"; it runs {', '.join(capabilities.runs())}; not there: {', '.join(lacking)}; use the local "
                         "engine for those")


def backend_name(backend) -> str:
    return getattr(backend, "name", type(backend).__name__)
