"""Image scorers on local models: CLIP score (image-prompt agreement) and the LAION improved-aesthetic predictor.

Weights load only through the project's checked loaders: the CLIP folder's files are checked before transformers
opens them, and the aesthetic MLP's file is read by `load_state_dict` (safetensors, or weights-only torch.load).
A scorer's identity is its id plus the sha256 of every weight file its values depend on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.errors import InputError, one_line

CLIP_REPO = "openai/clip-vit-large-patch14"
TINY_CLIP = "tiny-clip"
TINY_AESTHETIC = "tiny-aesthetic"
SCORERS = ("clip", "aesthetic")
_AESTHETIC_LAYERS = ("layers.0", "layers.2", "layers.4", "layers.6", "layers.7")
_LOADED: dict[tuple[str, str], tuple] = {}  # (CLIP folder, device) -> (model, processor): loaded once per process


@dataclass(frozen=True)
class ClipSource:
    """A CLIP model folder (transformers layout) and the sha256 of its weights."""

    name: str  # the repo id, "tiny-clip" or the folder as given
    folder: Path
    weights_hash: str


@dataclass
class Scorer:
    """One scorer ready to run: `id` ("clip", "aesthetic") and `weights_hash` key its values in scores.jsonl."""

    id: str
    weights_hash: str
    models: dict = field(default_factory=dict)  # what the hash covers: {"clip": name, "aesthetic": file}
    mlp_file: Path | None = None  # the aesthetic predictor's weights


def _combined(hashes: list[str]) -> str:
    return hashes[0] if len(hashes) == 1 else hashlib.sha256(":".join(hashes).encode()).hexdigest()


def _weights_hash(folder: Path) -> str:
    from sdxl_nb.config.checkpoints import checkpoint_sha256

    # transformers reads model.safetensors (or its shards) when there is one, else pytorch_model.bin (or shards).
    files = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise InputError(f"CLIP model folder {folder} holds no .safetensors or .bin weights")
    return _combined([checkpoint_sha256(path) for path in files])


def clip_source(model: str | None = None) -> ClipSource:
    """The CLIP to score with: a folder, "tiny-clip", or a Hugging Face repo id from the local cache (default
    openai/clip-vit-large-patch14). InputError (one line) when it is not there; nothing is downloaded."""
    from sdxl_nb.config.registry import locate_model

    name = model or CLIP_REPO
    if name == TINY_CLIP:
        from sdxl_nb.config.tiny_clip import ensure_tiny_clip

        folder = ensure_tiny_clip()
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise InputError(f"CLIP model folder {folder} has no config.json; accepted: a transformers CLIPModel "
                             f"folder, {TINY_CLIP!r}, or a repo id in the Hugging Face cache")
    elif Path(name).expanduser().exists() or name.count("/") != 1:
        raise InputError(f"CLIP model {name!r} is neither a model folder nor a Hugging Face repo id; accepted: a "
                         f"transformers CLIPModel folder, {TINY_CLIP!r}, or a repo id such as {CLIP_REPO}")
    else:
        folder = locate_model(name, need_pipeline=False)[0]
    return ClipSource(name, folder, _weights_hash(folder))


def aesthetic_file(model: str | None, clip: ClipSource) -> Path:
    """The aesthetic MLP's file: as given, else SDXL_NB_AESTHETIC, else the tiny twin when the CLIP is tiny-clip."""
    from sdxl_nb.config.tiny_clip import tiny_aesthetic_file

    given = model or settings.aesthetic_path()
    if given == TINY_AESTHETIC or (given is None and clip.name == TINY_CLIP):
        return tiny_aesthetic_file()
    if given is None:
        raise InputError(f"the aesthetic scorer needs the improved-aesthetic-predictor's weights (such as "
                         f"sac+logos+ava1-l14-linearMSE.pth); set {settings.AESTHETIC} to the file or pass it")
    path = Path(given).expanduser()
    if not path.is_file():
        raise InputError(f"aesthetic model file {given!r} does not exist; accepted: a .safetensors or .pth file "
                         f"of the improved-aesthetic-predictor's MLP, or {TINY_AESTHETIC!r}")
    return path


def aesthetic_mlp(path: Path, input_size: int):
    """The predictor's MLP (Linear layers 0, 2, 4, 6, 7 with dropouts between: inference is the Linear chain) from
    a checked weights file; InputError when its layout or input size does not fit."""
    import torch

    from sdxl_nb.backends.local.weights import load_state_dict

    state = load_state_dict(path, what="aesthetic model")
    state = state.get("state_dict", state)  # a Lightning checkpoint wraps its weights
    expected = [f"{name}.{part}" for name in _AESTHETIC_LAYERS for part in ("weight", "bias")]
    if not isinstance(state, dict) or sorted(state) != sorted(expected):
        raise InputError(f"aesthetic model {path} is not an improved-aesthetic-predictor MLP; accepted: the keys "
                         f"{', '.join(expected)}")
    layers, size = [], input_size
    for name in _AESTHETIC_LAYERS:
        weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
        if weight.dim() != 2 or weight.shape[1] != size or bias.shape != weight.shape[:1]:
            raise InputError(f"aesthetic model {path}: {name} has shape {tuple(weight.shape)}, expected input "
                             f"{size} (the CLIP's embedding size is {input_size})")
        layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
        layer.load_state_dict({"weight": weight.float(), "bias": bias.float()})
        layers.append(layer)
        size = weight.shape[0]
    if size != 1:
        raise InputError(f"aesthetic model {path} gives {size} values per image; accepted: one")
    return torch.nn.Sequential(*layers).eval()


def check_scorer_names(names) -> None:
    unknown = [name for name in names if name not in SCORERS]
    if unknown or not names:
        raise InputError(f"unknown scorer {unknown[0] if unknown else '(none)'!r}; accepted: {', '.join(SCORERS)}")


def scoring_device(device: str | None = None) -> str:
    """The device given, else the engine's rule (SDXL_NB_DEVICE, else CUDA when present, else the CPU), read here
    without importing the engine's diffusers modules."""
    import torch

    return device or settings.device() or ("cuda" if torch.cuda.is_available() else "cpu")


def build_scorers(names, clip: ClipSource, aesthetic: str | None = None) -> list[Scorer]:
    """Scorer objects for `names` (each "clip" or "aesthetic"), their identities fixed before anything is scored."""
    from sdxl_nb.config.checkpoints import checkpoint_sha256

    check_scorer_names(names)
    scorers = []
    for name in dict.fromkeys(names):
        if name == "clip":
            scorers.append(Scorer("clip", clip.weights_hash, {"clip": clip.name}))
        else:
            path = aesthetic_file(aesthetic, clip)
            scorers.append(Scorer("aesthetic", _combined([clip.weights_hash, checkpoint_sha256(path)]),
                                  {"clip": clip.name, "aesthetic": str(path)}))
            scorers[-1].mlp_file = path
    return scorers


def load_clip(source: ClipSource, device: str):
    """(CLIPModel, CLIPProcessor) on `device`, the folder's weight files checked first; kept for the process."""
    key = (str(source.folder), device)
    if key not in _LOADED:
        import transformers
        from transformers import CLIPModel, CLIPProcessor

        from sdxl_nb.backends.local.weights import check_weights_folder

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        check_weights_folder(source.folder, what=f"CLIP model {source.name!r}")
        safetensors = any(source.folder.glob("model*.safetensors"))
        try:
            model = CLIPModel.from_pretrained(source.folder, local_files_only=True, use_safetensors=safetensors or None)
            processor = CLIPProcessor.from_pretrained(source.folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:  # a folder without processor files, another model type...
            raise InputError(f"CLIP model {source.name!r} ({source.folder}) could not be loaded as a CLIPModel with "
                             f"its processor: {one_line(exc)[:200]}") from None
        _LOADED[key] = (model.to(device).eval(), processor)
    return _LOADED[key]


def image_embeddings(model, processor, images: list, device: str):
    """L2-normalised CLIP image embeddings (projected), one row per PIL image."""
    import torch

    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"].to(device)
        pooled = model.vision_model(pixel_values=pixels).pooler_output
        embeds = model.visual_projection(pooled).float()
    return embeds / embeds.norm(dim=-1, keepdim=True)


def text_embeddings(model, processor, texts: list[str], device: str):
    """L2-normalised CLIP text embeddings; text past the model's window is cut, as CLIP itself reads it."""
    import torch

    with torch.no_grad():
        tokens = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt",
                                     max_length=model.config.text_config.max_position_embeddings)
        pooled = model.text_model(input_ids=tokens["input_ids"].to(device),
                                  attention_mask=tokens["attention_mask"].to(device)).pooler_output
        embeds = model.text_projection(pooled).float()
    return embeds / embeds.norm(dim=-1, keepdim=True)


def clip_scores(image_embeds, text_embeds) -> list[float]:
    """CLIP score as torchmetrics' CLIPScore defines it: 100 x the cosine of image and text embeddings, at least 0."""
    return (100 * (image_embeds * text_embeds).sum(dim=-1)).clamp(min=0).tolist()
