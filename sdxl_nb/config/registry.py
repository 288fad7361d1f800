"""The model registry: presets models, SDXL pipelines in the local Hugging Face cache, the embedded model."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.checkpoints import (
    INPAINT_IN_CHANNELS,
    CheckpointFile,
    check_checkpoint_file,
    checkpoint_from_path,
    list_checkpoints,
    looks_inpainting,
    looks_refiner,
    looks_tiny,
)
from sdxl_nb.config.presets import ModelPreset, Presets
from sdxl_nb.config.safetensors_file import header_problem
from sdxl_nb.config.tiny import TINY_MODEL_ID
from sdxl_nb.config.tiny_inpaint import TINY_INPAINT_ID
from sdxl_nb.errors import InputError, ModelUnavailableError

# An inpainting folder (diffusers/stable-diffusion-xl-1.0-inpainting-0.1) declares the inpaint pipeline.
SDXL_PIPELINE_CLASSES = ("StableDiffusionXLPipeline", "StableDiffusionXLInpaintPipeline")
SDXL_REFINER_CLASS = "StableDiffusionXLImg2ImgPipeline"  # with no first text encoder: the refiner layout
# Components that carry weights (tokenizers and schedulers are config only).
_NON_WEIGHT_COMPONENTS = {"scheduler", "tokenizer", "tokenizer_2", "feature_extractor", "image_encoder"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    description: str
    source: str  # "embedded", "hf-cache" or "checkpoint" (a single .safetensors file)
    available: bool
    reason: str  # why it is not available ("" when it is)
    revision: str | None
    size_bytes: int | None
    path: str | None  # snapshot folder in the cache; a checkpoint's file
    preset: ModelPreset
    sha256: str | None = None  # a checkpoint file's sha256 (its revision too)

    @property
    def model_hash(self) -> str | None:
        """A1111's `Model hash` (first 10 hex digits of the file's sha256) where the model is one file."""
        return self.sha256[:10] if self.sha256 else None


def hf_cache_dir() -> Path:
    """The hub cache, read from the environment at call time (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/...)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def fetch_hint(repo_id: str) -> str:
    return f"hf download {repo_id}"


def _repo_folder(repo_id: str) -> Path:
    return hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _snapshot(repo_id: str) -> tuple[Path, str]:
    """The snapshot folder refs/main points at (else the newest one) and its commit hash."""
    folder = _repo_folder(repo_id)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir() or not any(snapshots.iterdir()):
        raise ModelUnavailableError(
            f"model {repo_id!r} is not in the local Hugging Face cache ({hf_cache_dir()}); "
            f"fetch it where a network exists with: {fetch_hint(repo_id)}")
    ref = folder / "refs" / "main"
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if (snapshots / commit).is_dir():
            return snapshots / commit, commit
    newest = max(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
    return newest, newest.name


def check_snapshot(repo_id: str, snapshot: Path, commit: str, *, need_pipeline: bool = True) -> None:
    """Raise ModelUnavailableError naming the first missing or truncated file of a snapshot."""
    where = f"model {repo_id!r} (snapshot {commit[:10]})"
    refetch = f"; re-fetch it where a network exists with: {fetch_hint(repo_id)}"
    if need_pipeline:
        index = snapshot / "model_index.json"
        if not index.is_file():
            raise ModelUnavailableError(f"{where} is missing model_index.json (not a diffusers pipeline folder){refetch}")
        try:
            spec = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(f"{where}: model_index.json is unreadable ({exc}){refetch}") from None
        components = {name: value[0] for name, value in spec.items()
                      if isinstance(value, list) and len(value) == 2 and value[0] is not None and not name.startswith("_")}
    else:
        components = {"": "diffusers"}
    for name, library in components.items():
        folder = snapshot / name if name else snapshot
        config = "scheduler_config.json" if name == "scheduler" else "config.json"
        if name in ("tokenizer", "tokenizer_2"):
            if not folder.is_dir() or not any(p.exists() for p in folder.iterdir()):
                raise ModelUnavailableError(f"{where} is missing {name}/ files{refetch}")
            continue
        if not (folder / config).exists():
            raise ModelUnavailableError(f"{where} is missing {(Path(name) / config).as_posix()}{refetch}")
        if name in _NON_WEIGHT_COMPONENTS:
            continue
        weights = [p for p in folder.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES)]
        if not weights:
            expected = "model.safetensors" if library == "transformers" else "diffusion_pytorch_model.safetensors"
            raise ModelUnavailableError(f"{where} is missing {(Path(name) / expected).as_posix()}{refetch}")
        for weight in weights:
            shown = weight.relative_to(snapshot).as_posix()
            if not weight.exists():  # a snapshot symlink whose blob is gone
                raise ModelUnavailableError(f"{where} is missing {shown}{refetch}")
            problem = header_problem(weight)
            if problem:
                raise ModelUnavailableError(f"{where}: {problem}{refetch}")
        for index_file in folder.glob("*.index.json"):
            try:
                weight_map = json.loads(index_file.read_text(encoding="utf-8")).get("weight_map", {})
                shards = {str(shard) for shard in weight_map.values()}
            except (OSError, ValueError, AttributeError, RecursionError):
                raise ModelUnavailableError(f"{where}: {index_file.relative_to(snapshot).as_posix()} is not a "
                                            f"readable shard index{refetch}") from None
            for shard in sorted(shards):
                if not (folder / shard).exists():
                    raise ModelUnavailableError(f"{where} is missing {(Path(name) / shard).as_posix()}{refetch}")


def locate_model(repo_id: str, *, need_pipeline: bool = True) -> tuple[Path, str]:
    """Snapshot folder and commit of a cached model, after checking every file it needs."""
    snapshot, commit = _snapshot(repo_id)
    check_snapshot(repo_id, snapshot, commit, need_pipeline=need_pipeline)
    return snapshot, commit


def _is_refiner_index(spec: dict) -> bool:
    return spec.get("_class_name") == SDXL_REFINER_CLASS and (spec.get("text_encoder") or [None])[0] is None


def _cached_sdxl_repos() -> dict[str, bool]:
    """repo id -> whether it is a refiner, for every cached model whose snapshot declares an SDXL pipeline or an
    SDXL refiner."""
    root = hf_cache_dir()
    found: dict[str, bool] = {}
    if not root.is_dir():
        return found
    for folder in sorted(root.glob("models--*")):
        repo_id = folder.name[len("models--"):].replace("--", "/")
        for index in (folder / "snapshots").glob("*/model_index.json"):
            try:
                spec = json.loads(index.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if spec.get("_class_name") in SDXL_PIPELINE_CLASSES or _is_refiner_index(spec):
                found[repo_id] = _is_refiner_index(spec)
                break
    return found


def _folder_size(folder: Path) -> int:
    # Blobs hold the bytes; snapshots hold links to them.
    blobs = folder / "blobs"
    target = blobs if blobs.is_dir() else folder
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


def cached_unet_in_channels(repo_id: str) -> int | None:
    """The input channels of a cached pipeline's UNet (9: an inpainting UNet), from its config; None if unreadable."""
    try:
        snapshot, _commit = _snapshot(repo_id)
        value = json.loads((snapshot / "unet" / "config.json").read_text(encoding="utf-8")).get("in_channels")
    except (ModelUnavailableError, OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _generic_preset(repo_id: str, presets: Presets, refiner: bool = False) -> ModelPreset:
    inpainting = not refiner and cached_unet_in_channels(repo_id) == INPAINT_IN_CHANNELS
    what = "SDXL refiner" if refiner else "SDXL inpainting pipeline" if inpainting else "SDXL pipeline"
    return ModelPreset(id=repo_id, description=f"{what} found in the local Hugging Face cache",
                       steps=presets.defaults.steps, cfg=presets.defaults.cfg, heavy=True,
                       turbo="turbo" in repo_id.lower(), refiner=refiner, inpainting=inpainting)


def _checkpoint_preset(file: CheckpointFile, presets: Presets) -> ModelPreset:
    # A refiner file (sd_xl_refiner_1.0.safetensors) is picked as a refiner, never as a base, as a refiner folder is.
    refiner = looks_refiner(file.path)
    inpainting = not refiner and looks_inpainting(file.path)
    base = presets.models.get(TINY_INPAINT_ID if inpainting else TINY_MODEL_ID) if looks_tiny(file.path) else None
    kind = "refiner " if refiner else "inpainting " if inpainting else ""
    description = f"SDXL {kind}checkpoint {file.path}"
    if base is not None:  # the tiny architecture: the demo model's defaults (size, steps) fit it
        return ModelPreset(id=file.name, description=description, steps=base.steps, cfg=base.cfg, heavy=False,
                           turbo=False, source="checkpoint", native_size=base.native_size, refiner=refiner,
                           inpainting=inpainting)
    return ModelPreset(id=file.name, description=description, steps=presets.defaults.steps, cfg=presets.defaults.cfg,
                       heavy=True, turbo="turbo" in file.name.lower(), source="checkpoint", refiner=refiner,
                       inpainting=inpainting)


def _table(presets: Presets) -> tuple[dict[str, ModelPreset], dict[str, CheckpointFile], dict[str, str]]:
    """(id -> preset, id -> checkpoint file, id -> why the id is ambiguous) over presets, cache and checkpoints."""
    table = dict(presets.models)
    for repo_id, refiner in _cached_sdxl_repos().items():
        table.setdefault(repo_id, _generic_preset(repo_id, presets, refiner))
    files: dict[str, CheckpointFile] = {}
    clashes: dict[str, str] = {}
    for file in list_checkpoints():
        if file.name in table:  # never pick one silently: the id is refused until a file is renamed
            first = (f"the checkpoint {files[file.name].path}" if file.name in files else
                     "the embedded model" if table[file.name].source == "embedded" else "the Hugging Face cache model")
            clashes[file.name] = (f"model id {file.name!r} is ambiguous: {first} and the checkpoint {file.path}; "
                                  "rename the file (a checkpoint's id is its file name without .safetensors)")
            continue
        table[file.name] = _checkpoint_preset(file, presets)
        files[file.name] = file
    return table, files, clashes


def _checkpoint_info(preset: ModelPreset, file: CheckpointFile) -> ModelInfo:
    try:
        check_checkpoint_file(file.path)
    except ModelUnavailableError as exc:
        return ModelInfo(preset.id, preset.description, "checkpoint", False, str(exc), None, file.size_bytes,
                         file.path, preset)
    sha256 = file.sha256
    return ModelInfo(preset.id, preset.description, "checkpoint", True, "", sha256, file.size_bytes, file.path,
                     preset, sha256)


def checkpoint_model(file: CheckpointFile, presets: Presets) -> ModelInfo:
    """A checkpoint file as a model, by its path (a recorded job's file that is no longer in the folders)."""
    return _checkpoint_info(_checkpoint_preset(file, presets), file)


def _info(preset: ModelPreset, file: CheckpointFile | None = None, clash: str | None = None) -> ModelInfo:
    if clash:
        source = preset.source if preset.source in ("embedded", "checkpoint") else "hf-cache"
        return ModelInfo(preset.id, preset.description, source, False, clash, None, None, None, preset)
    if file is not None:
        return _checkpoint_info(preset, file)
    if preset.source == "embedded":
        return ModelInfo(preset.id, preset.description, "embedded", True, "", None, None, None, preset)
    try:
        snapshot, commit = locate_model(preset.id)
    except ModelUnavailableError as exc:
        return ModelInfo(preset.id, preset.description, "hf-cache", False, str(exc), None, None, None, preset)
    return ModelInfo(preset.id, preset.description, "hf-cache", True, "", commit,
                     _folder_size(_repo_folder(preset.id)), str(snapshot), preset)


def model_presets(presets: Presets) -> dict[str, ModelPreset]:
    """Every selectable model: presets.json's, other SDXL pipelines in the cache, then single-file checkpoints."""
    return _table(presets)[0]


def base_model_ids(table: dict[str, ModelPreset]) -> list[str]:
    """The models a job can start from (refiners only finish another model's job)."""
    return [model_id for model_id, preset in table.items() if not preset.refiner]


def refiner_ids(table: dict[str, ModelPreset]) -> list[str]:
    return [model_id for model_id, preset in table.items() if preset.refiner]


def list_models(presets: Presets) -> list[ModelInfo]:
    """Every selectable model with its availability, revision and size (offline; reads no weights; a checkpoint's
    sha256 is computed once per file content). An ambiguous id is listed as unavailable, with the reason."""
    table, files, clashes = _table(presets)
    infos = [_info(preset, files.get(model_id), clashes.get(model_id)) for model_id, preset in table.items()]
    for file in list_checkpoints():
        if file.name in clashes and files.get(file.name) != file:
            preset = _checkpoint_preset(file, presets)
            infos.append(ModelInfo(file.name, preset.description, "checkpoint", False, clashes[file.name], None,
                                   file.size_bytes, file.path, preset))
    return infos


def find_model(model_id: str, presets: Presets) -> ModelInfo:
    table, files, clashes = _table(presets)
    if model_id in clashes:
        raise InputError(clashes[model_id])
    if model_id not in table:
        raise InputError(f"unknown model {model_id!r}; accepted: {', '.join(table)}")
    return _info(table[model_id], files.get(model_id))


def checkpoint_record(info: ModelInfo) -> dict:
    """The record's model fields beyond id and revision: a checkpoint's path and sha256 (what lets a re-run load the
    same file), and `inpainting: true` for a 9-channel inpainting UNet (absent otherwise: other records keep their
    shape)."""
    fields = {"path": info.path, "sha256": info.sha256} if info.source == "checkpoint" else {}
    return {**fields, "inpainting": True} if info.preset.inpainting else fields


def recorded_model(model: dict, presets: Presets) -> tuple[ModelInfo, list[str]]:
    """The model a record ran with, for a re-run: a checkpoint is loaded from its recorded path (by id when the
    file is gone); notes say when the file is not the one the job used."""
    notes: list[str] = []
    path, sha256 = model.get("path"), model.get("sha256")
    if model.get("source") == "checkpoint" and isinstance(path, str) and Path(path).is_file():
        info = checkpoint_model(checkpoint_from_path(path), presets)
    else:
        info = find_model(str(model.get("id")), presets)
        if model.get("source") == "checkpoint" and isinstance(path, str):
            notes.append(f"checkpoint {path} is gone; loaded {info.id!r} from {info.path}")
    if isinstance(sha256, str) and info.sha256 and info.sha256 != sha256:
        notes.append(f"checkpoint {info.path} changed since the job (sha256 {info.sha256[:12]}..., "
                     f"recorded {sha256[:12]}...)")
    return info, notes


def default_model_id(presets: Presets) -> str:
    """`SDXL_NB_MODEL` if set; else presets' default when available; else the first available real model (cache,
    then checkpoints); else tiny-sdxl."""
    chosen = settings.model()
    if chosen:
        return chosen
    infos = list_models(presets)
    by_id = {info.id: info for info in infos}
    if by_id.get(presets.defaults.model) and by_id[presets.defaults.model].available:
        if by_id[presets.defaults.model].source != "embedded":
            return presets.defaults.model
    # A checkpoint of the tiny architecture (a converted tiny-sdxl) is a demo, not a real model.
    real = [info.id for info in infos if info.available and info.source != "embedded" and not info.preset.refiner
            and not (info.source == "checkpoint" and not info.preset.heavy)]
    return real[0] if real else TINY_MODEL_ID
