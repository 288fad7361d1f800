"""The base + refiner hand-off: loads a refiner beside a base model (sharing identical modules) and runs its steps."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
from transformers import CLIPTextModelWithProjection, CLIPTokenizer

from sdxl_nb.backends.local.conditioning import PromptEncoder, run_shape
from sdxl_nb.backends.local.loading import _variant
from sdxl_nb.backends.local.oom import component_bytes
from sdxl_nb.backends.local.refiner_split import denoising_point, refined_pass, split_problem, split_steps, switch_by
from sdxl_nb.config.refiners import AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE, embedded_refiner_folder, model_revision
from sdxl_nb.config.registry import ModelInfo, locate_model
from sdxl_nb.errors import GenerationError, ModelUnavailableError, one_line
from sdxl_nb.request.prompt_syntax import without_tags

SHAREABLE = ("vae", "text_encoder_2")  # what an SDXL refiner can have in common with its base
_BLOB = re.compile(r"^[0-9a-f]{64}$")
_FILE_HASHES: dict[tuple, str] = {}  # (path, size, mtime) -> sha256, so a file is read once per process


@dataclass
class LoadedRefiner:
    info: ModelInfo
    revision: str | None
    path: str
    pipe: StableDiffusionXLImg2ImgPipeline
    shared: tuple[str, ...]  # the base's modules it uses as they are (same objects, same dtype)
    extra_bytes: int  # parameter and buffer bytes of its own modules (the shared ones cost nothing)
    own_scheduler: object = None
    derived: dict = field(default_factory=dict)

    def pipeline(self, mode: str):
        """The refiner for a mode: img2img continues txt2img and img2img latents; inpaint keeps the mask."""
        if mode != "inpaint":
            return self.pipe
        if "inpaint" not in self.derived:
            derived = StableDiffusionXLInpaintPipeline(**self.pipe.components, **_flags(self.pipe))
            derived.set_progress_bar_config(disable=True)
            self.derived["inpaint"] = derived
        return self.derived["inpaint"]


def _flags(pipe) -> dict:
    return dict(requires_aesthetics_score=pipe.config.requires_aesthetics_score,
                force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt, add_watermarker=False)


def _file_hash(path: Path) -> str:
    real = path.resolve()
    if real.parent.name == "blobs" and _BLOB.match(real.name):  # the HF cache names LFS blobs by their sha256
        return real.name
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(real, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def weights_hash(folder: Path, dtype: torch.dtype) -> str | None:
    """A hash of the weight files a component folder loads from (the variant the engine picks); None: none found."""
    variant = _variant(folder, dtype)
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".safetensors", ".bin"))
                   and ((f".{variant}." in p.name) if variant else p.name.count(".") == 1))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + _file_hash(path).encode())
    return digest.hexdigest()


def _base_folders(loaded) -> dict[str, Path]:
    return {"text_encoder_2": Path(loaded.path) / "text_encoder_2", "vae": Path(loaded.path) / "vae"}


def _shares(loaded, name: str, same) -> bool:
    """Whether the refiner uses the base's own module `name`: a dedicated VAE the base uses (e.g. the fp16 fix)
    decodes the refiner's latents too, as A1111's VAE setting applies to both (SDXL base and refiner share one
    latent space); else when `same()` says the weights are the base's, byte for byte."""
    return (name == "vae" and bool(loaded.vae)) or same()


def folder_shares(loaded, folder: Path, dtype: torch.dtype) -> list[str]:
    """The modules of a refiner folder that are the loaded base's own: whose weight files hash as the base folder's
    (a single-file base has no such folder: its modules are compared once loaded), or a dedicated VAE."""
    shared = []
    for name, base_folder in _base_folders(loaded).items():
        own = weights_hash(folder / name, dtype)
        if _shares(loaded, name, lambda own=own, base_folder=base_folder: own is not None and base_folder.is_dir()
                   and own == weights_hash(base_folder, dtype)):
            shared.append(name)
    return shared


def same_tensors(own, theirs) -> bool:
    """Whether two modules hold the same weights bit for bit (names, shapes, dtypes, values). LoRA adapters peft
    injected into a module (kept loaded between jobs, set per job) are not its weights: the base layers are."""
    mine, other = _base_weights(own), _base_weights(theirs)
    return mine.keys() == other.keys() and all(
        mine[key].dtype == other[key].dtype and mine[key].shape == other[key].shape
        and torch.equal(mine[key].to(other[key].device), other[key]) for key in mine)


def _base_weights(module) -> dict:
    """A module's state dict without peft's adapter tensors, its wrapped layers under their own names."""
    return {key.replace(".base_layer.", "."): value for key, value in module.state_dict().items()
            if ".lora_" not in key}


def load_refiner(engine, loaded, info: ModelInfo) -> LoadedRefiner:
    """The refiner beside a loaded base (once; kept with the base). Modules whose weight files hash the same as the
    base's are the base's own objects: no extra bytes, dtype unchanged."""
    kept = loaded.refiners.get(info.id)
    if kept is not None and kept.revision == model_revision(info):
        return kept
    loaded.refiners.pop(info.id, None)  # a refiner file replaced since it loaded: loaded again, as a base would be
    if info.source == "checkpoint":
        return _load_refiner_file(engine, loaded, info)
    if info.source == "embedded":
        folder = Path(embedded_refiner_folder(info.id))
    else:
        folder = Path(locate_model(info.id)[0])
    dtype = loaded.pipe.unet.dtype
    common = dict(torch_dtype=dtype, local_files_only=True)
    from sdxl_nb.backends.local.weights import check_weights_folder

    for name in ("text_encoder_2", "vae", "unet"):  # diffusers opens them after the weights checker accepted them
        check_weights_folder(folder / name, what=f"refiner {info.id!r} {name}")
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        base_folders = _base_folders(loaded)
        modules, shared = {}, folder_shares(loaded, folder, dtype)
        for name, cls in (("text_encoder_2", CLIPTextModelWithProjection), ("vae", diffusers.AutoencoderKL)):
            if name in shared:
                modules[name] = getattr(loaded.pipe, name)
                continue
            modules[name] = cls.from_pretrained(folder / name, variant=_variant(folder / name, dtype), **common)
            if not base_folders[name].is_dir() and same_tensors(modules[name], getattr(loaded.pipe, name)):
                modules[name] = getattr(loaded.pipe, name)  # equal weights, compared once loaded
                shared.append(name)
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", variant=_variant(folder / "unet", dtype), **common)
        tokenizer_2 = CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True)
        scheduler = getattr(diffusers, index["scheduler"][1]).from_pretrained(folder / "scheduler", local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailableError(f"refiner {info.id!r} could not be loaded from {folder}: {one_line(exc)}") from exc
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=modules["vae"], text_encoder=None, text_encoder_2=modules["text_encoder_2"], tokenizer=None,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
        requires_aesthetics_score=index.get("requires_aesthetics_score", True),
        force_zeros_for_empty_prompt=index.get("force_zeros_for_empty_prompt", False), add_watermarker=False)
    return _keep(engine, loaded, info, str(folder), pipe, shared)


def _load_refiner_file(engine, loaded, info: ModelInfo) -> LoadedRefiner:
    """A single-file refiner (sd_xl_refiner_1.0.safetensors): loaded on the CPU, then its VAE and text encoder are
    the base's own where their weights are the base's bit for bit (the file holds no per-module hash)."""
    from sdxl_nb.backends.local.checkpoint_load import load_refiner_checkpoint

    pipe = load_refiner_checkpoint(info.path, loaded.pipe.unet.dtype)
    shared = []
    for name in SHAREABLE:
        if _shares(loaded, name, lambda name=name: same_tensors(getattr(pipe, name), getattr(loaded.pipe, name))):
            pipe.register_modules(**{name: getattr(loaded.pipe, name)})
            shared.append(name)
    return _keep(engine, loaded, info, str(info.path), pipe, shared)


def _keep(engine, loaded, info: ModelInfo, path: str, pipe, shared: list[str]) -> LoadedRefiner:
    """The refiner's own modules on the engine's device, its memory cost, kept with the base."""
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module) and name not in shared:
            module.to(engine.device)
    pipe.set_progress_bar_config(disable=True)
    extra = sum(size for name, size in component_bytes(pipe).items() if name not in shared)
    refiner = LoadedRefiner(info=info, revision=model_revision(info), path=path, pipe=pipe, shared=tuple(shared),
                            extra_bytes=extra, own_scheduler=pipe.scheduler)
    loaded.refiners[info.id] = refiner
    return refiner


def job_refiner(engine, loaded, r) -> LoadedRefiner:
    """The refiner a request names, loaded beside its base (once)."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model

    return load_refiner(engine, loaded, find_model(r.refiner.id, load_presets()))


class RefinerStage:
    """One job's hand-off: the base's call stops at the switch (latents out), the refiner's continues from it."""

    def __init__(self, refiner: LoadedRefiner, r, make_scheduler, texts: list[str] | None = None,
                 vectors: dict | None = None):
        self.r = r
        self.refiner = refiner
        self.pipe = refiner.pipeline(r.mode)
        base = refiner.own_scheduler
        cls = type(base) if r.scheduler.cls is None else getattr(diffusers, r.scheduler.cls)
        self.pipe.scheduler = cls.from_config(base.config, **r.scheduler.kwargs)
        scheduler = make_scheduler()
        # With a hires fix the refiner takes over in the second pass (A1111's default hires_fix_refiner_pass
        # "second pass": apply_refiner skips the first); its steps follow the first pass's in the progress.
        self.hires = r.hires is not None
        self.first = sum(split_steps(scheduler, r.steps, 1.0, r.strength)) if self.hires else 0
        self.schedule, strength = refined_pass(r)
        base_steps, refiner_steps = split_steps(scheduler, self.schedule, r.refiner_switch, strength, switch_by(r))
        self.steps = (base_steps, refiner_steps)
        # Where diffusers cuts the schedule (denoising_end / denoising_start): the switch itself, or for a switch by
        # sampling steps the point between the base's last timestep and the refiner's first.
        self.point = denoising_point(scheduler, self.schedule, r.refiner_switch, strength, switch_by(r))
        self.first_pipe = None
        self.warnings, self.events = [], []
        self.active = r.refiner_switch < 1 and refiner_steps > 0
        # A1111's weighting, chunking and embeddings on CLIP-G alone; plain prompts go as text, as a bare call.
        second = self.pipe.tokenizer_2, self.pipe.text_encoder_2
        shim = type("SecondEncoder", (), dict(tokenizer=second[0], text_encoder=second[1], tokenizer_2=second[0],
                                              text_encoder_2=second[1]))
        self.encoder = PromptEncoder(shim, vectors)
        self.texts = texts or [r.styled_prompt, r.effective_negative_prompt]
        self.chunks, self.weighted = run_shape(self.encoder, self.texts)
        self.encoded: dict[str, object] = {}
        problem = split_problem(scheduler, r)
        if problem:  # refused before any work (LocalEngine.check_networks); here only if a caller skipped that
            raise GenerationError(problem)
        if self.active:
            self.events.append(f"refiner {refiner.info.id}: base {base_steps} step(s), refiner {refiner_steps}; shares "
                               f"{', '.join(refiner.shared) or 'nothing'} with the base; its own modules hold "
                               f"{refiner.extra_bytes / 2**20:.1f} MiB")

    def base_arguments(self, args: dict) -> dict:
        """The first pass's call: it stops at the switch, unless the refiner waits for the hires pass."""
        return dict(args, denoising_end=self.point) if self.active and not self.hires else args

    def progress(self, pipe, i: int) -> tuple[int, int]:
        """(step, total) over every pass's steps: the first pass, the hires pass's base steps, the refiner's."""
        if not self.active:
            return i + 1, pipe.num_timesteps
        total = self.first + sum(self.steps)
        if pipe is self.pipe:
            return i + 1 + self.first + self.steps[0], total
        if self.first_pipe is None:
            self.first_pipe = pipe
        return (i + 1 if pipe is self.first_pipe else i + 1 + self.first), total

    def _encode(self, text: str):
        if text not in self.encoded:
            self.encoded[text] = self.encoder.encode_one(text, 1, self.chunks)
        return self.encoded[text]

    def _conditioning(self, specs) -> dict:
        r = self.r
        if not self.weighted:
            negative = r.effective_negative_prompt or None
            return dict(prompt=[without_tags(spec.prompt) for spec in specs],
                        negative_prompt=None if negative is None else [negative] * len(specs))
        positive = [self._encode(spec.prompt) for spec in specs]
        negative = self._encode(r.effective_negative_prompt)
        return dict(prompt_embeds=torch.cat([e.hidden for e in positive]),
                    pooled_prompt_embeds=torch.cat([e.pooled for e in positive]),
                    negative_prompt_embeds=negative.hidden.repeat(len(specs), 1, 1),
                    negative_pooled_prompt_embeds=negative.pooled.repeat(len(specs), 1))

    def arguments(self, latents, specs, base_args: dict) -> dict:
        r = self.r
        args = dict(**self._conditioning(specs), image=latents, num_inference_steps=self.schedule, guidance_scale=r.cfg,
                    denoising_start=self.point, output_type="latent",
                    aesthetic_score=AESTHETIC_SCORE, negative_aesthetic_score=NEGATIVE_AESTHETIC_SCORE,
                    # Fresh per-image generators: an ancestral sampler's noise depends on the image's seed alone.
                    generator=[torch.Generator("cpu").manual_seed(spec.seed) for spec in specs])
        if r.mode == "inpaint":
            args.update(mask_image=base_args["mask_image"], width=r.width, height=r.height)
        return args

    def refine(self, engine, latents, specs, base_args: dict, **call) -> torch.Tensor:
        """The refiner's steps on the base's latents (the base's own output when it does not run)."""
        if not self.active:
            return latents
        return engine.call_pipeline(self.pipe, **self.arguments(latents, specs, base_args), **call).images

    def decoder(self, base_pipe):
        """The pipeline whose VAE decodes: the refiner's once it ran (the base's very module when shared)."""
        return self.pipe if self.active else base_pipe
