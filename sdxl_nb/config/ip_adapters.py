"""The IP-Adapter registry: h94-layout folders in SDXL_NB_IP_ADAPTERS, h94/IP-Adapter in the HF cache, the tiny one; no torch.

An adapter is a weight file (`image_proj.*` + `ip_adapter.*` keys) and the CLIP image encoder it was trained
with: h94 puts ViT-bigG beside the SDXL files (`sdxl_models/image_encoder`) and ViT-H, which the `*_vit-h`
adapters need, in `models/image_encoder`. A plain folder of .safetensors uses the `image_encoder/` beside them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.input_image import InputImage
from sdxl_nb.config.loras import _cached_hash, file_sha256
from sdxl_nb.config.name_clash import clash_warning, clashes
from sdxl_nb.config.safetensors_file import header_problem, safetensors_header
from sdxl_nb.errors import InputError

H94_REPO = "h94/IP-Adapter"
_ENCODER_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class IpAdapterFile:
    name: str  # the weight file's name without .safetensors: what --ip-adapter NAME takes
    path: str  # the weight file
    root: str  # the folder diffusers' load_ip_adapter is given
    subfolder: str  # the weight file's folder under root ("sdxl_models", or "" for a plain folder)
    encoder_folder: str  # load_ip_adapter's image_encoder_folder ("image_encoder" or "models/image_encoder")
    source: str  # "embedded", "hf-cache" or the folder it was found in
    revision: str | None = None  # the HF snapshot commit when found in the cache

    @property
    def encoder_path(self) -> Path:
        """The image encoder's folder (a transformers CLIPVisionModelWithProjection folder)."""
        if "/" in self.encoder_folder:
            return Path(self.root) / self.encoder_folder
        return Path(self.root) / self.subfolder / self.encoder_folder

    @property
    def size_bytes(self) -> int:
        return Path(self.path).stat().st_size


@dataclass(frozen=True)
class IpAdapterUse:
    """The IP-Adapter of a job: which weights and encoder (by content hash), its images and its scale."""

    name: str
    path: str
    sha256: str
    a1111_hash: str  # A1111's legacy 8-hex model hash, as the ControlNet extension shows `Model: NAME [HASH]`
    root: str
    subfolder: str
    encoder_folder: str
    encoder_sha256: str  # the encoder's weight file
    encoder_revision: str | None  # the HF snapshot commit when the folder came from the cache
    images: tuple[InputImage, ...]
    scale: float

    @property
    def encoder_path(self) -> Path:
        return IpAdapterFile(self.name, self.path, self.root, self.subfolder, self.encoder_folder, "").encoder_path

    @property
    def key(self) -> tuple:
        """What identifies the loaded adapter: the weights and the encoder, by content."""
        return (self.sha256, self.encoder_sha256)

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "a1111_hash": self.a1111_hash,
                "root": self.root, "subfolder": self.subfolder,
                "image_encoder": {"folder": self.encoder_folder, "path": str(self.encoder_path),
                                  "sha256": self.encoder_sha256, "revision": self.encoder_revision},
                "scale": self.scale}  # its images are the record's `ip_images` (inputs, as init images are)


def _encoder_for(subfolder: str, name: str) -> str:
    if subfolder == "sdxl_models" and "vit-h" in name.lower():
        return "models/image_encoder"
    return "image_encoder"


def _folder_adapters(folder: Path, source: str, revision: str | None = None) -> list[IpAdapterFile]:
    """The adapters of one folder: an h94 root (sdxl_models/) or a plain folder of .safetensors files."""
    if (folder / "sdxl_models").is_dir():
        subfolder, files = "sdxl_models", sorted((folder / "sdxl_models").glob("*.safetensors"))
    elif folder.is_dir():
        subfolder, files = "", sorted(folder.glob("*.safetensors"))
    else:
        return []
    return [IpAdapterFile(path.stem, str(path), str(folder), subfolder, _encoder_for(subfolder, path.stem),
                          source, revision) for path in files if path.is_file()]


def _hf_snapshot() -> tuple[Path, str] | None:
    from sdxl_nb.config.registry import hf_cache_dir

    repo = hf_cache_dir() / ("models--" + H94_REPO.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else ""
    if commit and (snapshots / commit).is_dir():
        return snapshots / commit, commit
    found = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime)
    return (found[-1], found[-1].name) if found else None


def demo_ip_adapters() -> list[IpAdapterFile]:
    """The embedded tiny adapters (plain and Plus), built on first use."""
    from sdxl_nb.config.tiny_ip_adapter import ensure_demo_ip_adapter

    return _folder_adapters(ensure_demo_ip_adapter(), "embedded")


def _all_adapters(demo: bool) -> list[IpAdapterFile]:
    """Every adapter file in search order: the tiny ones, each SDXL_NB_IP_ADAPTERS folder's, then the cache's."""
    found = list(demo_ip_adapters()) if demo else []
    for raw in settings.ip_adapter_paths():
        folder = Path(raw).expanduser()
        found += _folder_adapters(folder, str(folder))
    snapshot = _hf_snapshot()
    if snapshot:
        found += _folder_adapters(snapshot[0], "hf-cache", snapshot[1])
    return found


def list_ip_adapters(*, demo: bool = True) -> list[IpAdapterFile]:
    """Every adapter by name: the tiny one, each SDXL_NB_IP_ADAPTERS folder's, then h94/IP-Adapter's in the cache
    (a name found twice: the first wins; `ip_adapter_clashes` says it)."""
    found: dict[str, IpAdapterFile] = {}
    for adapter in _all_adapters(demo):
        found.setdefault(adapter.name, adapter)
    return list(found.values())


def ip_adapter_clashes(demo: bool = True) -> dict[str, list[str]]:
    """name -> every adapter file of that name (the first is the one used), for names two files share."""
    return clashes((adapter.name, adapter.path) for adapter in _all_adapters(demo))


def ip_adapter_clash_warnings(name: str) -> list[str]:
    """A job's warning when its adapter's name is shared ([] otherwise)."""
    return clash_warning("IP-Adapter", name, ip_adapter_clashes())


def find_ip_adapter(name: str) -> IpAdapterFile:
    """The adapter of that name; an unknown name is an InputError listing the known ones."""
    from sdxl_nb.config.tiny_ip_adapter import DEMO_IP_ADAPTER

    if not isinstance(name, str) or not name.strip():
        raise InputError(f"ip_adapter must be an adapter name, got {name!r}; see `sdxl-nb ip-adapters`")
    if name.startswith(DEMO_IP_ADAPTER):
        for adapter in demo_ip_adapters():
            if adapter.name == name:
                return adapter
    known = list_ip_adapters(demo=False)
    for adapter in known:
        if adapter.name == name:
            return adapter
    where = (f"in {', '.join(settings.ip_adapter_paths())} or {H94_REPO} in the Hugging Face cache"
             if settings.ip_adapter_paths() else f"({settings.IP_ADAPTERS} is not set; looked in {H94_REPO} in the "
                                                 "Hugging Face cache)")
    raise InputError(f"unknown IP-Adapter {name!r} {where}; accepted: "
                     f"{', '.join([*(a.name for a in demo_ip_adapters()), *(a.name for a in known)])}")


def encoder_problem(adapter: IpAdapterFile) -> str | None:
    """Why the adapter's image encoder cannot be used (missing folder, no weights, wrong width), or None."""
    folder = adapter.encoder_path
    if not (folder / "config.json").is_file() or not any((folder / w).is_file() for w in _ENCODER_WEIGHTS):
        return (f"IP-Adapter {adapter.name!r} needs its CLIP image encoder in {folder} (config.json and "
                f"model.safetensors), which is missing; fetch it with the adapter (h94/IP-Adapter: "
                f"{'models' if '/' in adapter.encoder_folder else 'sdxl_models'}/image_encoder)")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"IP-Adapter {adapter.name!r}: its image encoder's config.json cannot be read ({exc})"
    header = safetensors_header(adapter.path)
    proj = header.get("image_proj.proj.weight") or header.get("image_proj.proj_in.weight")
    width = config.get("projection_dim") if "image_proj.proj.weight" in header else config.get("hidden_size")
    if proj is not None and width is not None and proj["shape"][-1] != width:
        return (f"IP-Adapter {adapter.name!r} takes {proj['shape'][-1]}-wide image embeddings but the image encoder "
                f"in {folder} gives {width}: they were not made together (a *_vit-h adapter needs "
                "models/image_encoder)")
    return None


def weights_problem(adapter: IpAdapterFile) -> str | None:
    header = safetensors_header(adapter.path)
    keys = [k for k in header if k != "__metadata__"]
    if not any(k.startswith("image_proj.") for k in keys) or not any(k.startswith("ip_adapter.") for k in keys):
        return (f"{adapter.path} is not an IP-Adapter file (it needs image_proj.* and ip_adapter.* keys, as "
                "h94/IP-Adapter's files have)")
    return None


def weight_bytes(ip: IpAdapterUse, dtype_bytes: int) -> dict[str, int]:
    """{"ip_adapter": ..., "image_encoder": ...}: what loading the adapter adds, its parameters at `dtype_bytes`
    each (counted from the files' headers; a weights file without a safetensors header counts as its size)."""
    import math

    def parameters(path: Path) -> int:
        try:
            header = safetensors_header(path)
        except (InputError, OSError):
            return path.stat().st_size if path.is_file() else 0
        return sum(math.prod(entry["shape"]) for key, entry in header.items() if key != "__metadata__") * dtype_bytes

    folder = ip.encoder_path
    encoder = next((folder / w for w in _ENCODER_WEIGHTS if (folder / w).is_file()), folder / _ENCODER_WEIGHTS[0])
    return {"ip_adapter": parameters(Path(ip.path)), "image_encoder": parameters(encoder)}


def encoder_sha256(adapter: IpAdapterFile) -> str:
    folder = adapter.encoder_path
    weights = next(folder / w for w in _ENCODER_WEIGHTS if (folder / w).is_file())
    return file_sha256(weights)


def a1111_model_hash(path: str | Path) -> str:
    """A1111's legacy model hash (sha256 of 64 KiB at 1 MiB, 8 hex), which the ControlNet extension shows."""
    def compute(file: Path) -> str:
        with open(file, "rb") as handle:
            handle.seek(0x100000)
            return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]

    return _cached_hash(path, "a1111-legacy", compute)


def ip_adapter_use(name: str, images: tuple[InputImage, ...], scale: float) -> IpAdapterUse:
    """A named adapter checked (weights, encoder) and hashed, with the job's images and scale."""
    adapter = find_ip_adapter(name)
    problem = header_problem(adapter.path)
    if problem:
        raise InputError(f"IP-Adapter {name!r} is unusable: {problem}")
    problem = weights_problem(adapter) or encoder_problem(adapter)
    if problem:
        raise InputError(problem)
    revision = adapter.revision
    return IpAdapterUse(name=adapter.name, path=adapter.path, sha256=file_sha256(adapter.path),
                        a1111_hash=a1111_model_hash(adapter.path), root=adapter.root, subfolder=adapter.subfolder,
                        encoder_folder=adapter.encoder_folder, encoder_sha256=encoder_sha256(adapter),
                        encoder_revision=revision, images=images, scale=scale)


def cross_attention_count(unet_config: dict) -> int:
    """How many cross-attention layers an SDXL-style UNet config has (what an adapter needs k/v pairs for)."""
    down_types, up_types = unet_config["down_block_types"], unet_config["up_block_types"]
    blocks = len(down_types)
    per_block = unet_config.get("transformer_layers_per_block", 1)
    per_block = [per_block] * blocks if isinstance(per_block, int) else list(per_block)
    layers = unet_config.get("layers_per_block", 2)
    layers = [layers] * blocks if isinstance(layers, int) else list(layers)
    reverse = unet_config.get("reverse_transformer_layers_per_block") or list(reversed(per_block))
    count = sum(layers[i] * per_block[i] for i, kind in enumerate(down_types) if "CrossAttn" in kind)
    count += sum((list(reversed(layers))[i] + 1) * reverse[i] for i, kind in enumerate(up_types) if "CrossAttn" in kind)
    mid = unet_config.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid and "CrossAttn" in mid:
        count += per_block[-1]
    return count


def fit_problem(ip, unet_config: dict, model_id: str) -> str | None:
    """Why the adapter's weights do not fit the model's UNet (one line), or None."""
    header = safetensors_header(ip.path)
    pairs = [k for k in header if k.startswith("ip_adapter.") and k.endswith(".to_k_ip.weight")]
    cross = unet_config["cross_attention_dim"]
    wanted = cross_attention_count(unet_config)
    widths = {tuple(header[k]["shape"])[1] for k in pairs}
    if len(pairs) != wanted or widths != {cross}:
        return (f"IP-Adapter {ip.name!r} has {len(pairs)} cross-attention layers of width {sorted(widths)}, but "
                f"{model_id} has {wanted} of width {cross}: it was made for another model (an SDXL model needs "
                "an *_sdxl* adapter)")
    return None


def model_unet_config(model_id: str) -> dict:
    """A model's UNet config read from its folder (the tiny model is built on first use); no torch."""
    from sdxl_nb.config.registry import locate_model
    from sdxl_nb.config.tiny import TINY_MODEL_ID, ensure_tiny_model

    folder = ensure_tiny_model() if model_id == TINY_MODEL_ID else Path(locate_model(model_id)[0])
    return json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))


def ip_adapter_listing(model: str | None = None, *, fits: bool = True, hashes: bool = True,
                       demo: bool = True) -> list[dict]:
    """Every adapter: {name, path, size_bytes, sha256, a1111_hash, source, image_encoder, model, fits, usable,
    problem, clash}; with `fits`, checked against `model` (default: the default model) from its files alone (no
    torch). A file that cannot be read is listed as unusable with its reason; the others are unaffected. Without
    `hashes` the files are not read whole (the hashes stay None: a quick listing); without `demo` the embedded tiny
    adapters are left out (they are built on first use)."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import default_model_id

    model_id = (model or default_model_id(load_presets())) if fits else None
    config = model_unet_config(model_id) if model_id else None
    table = ip_adapter_clashes(demo)
    rows = []
    for adapter in list_ip_adapters(demo=demo):
        clash = clash_warning("IP-Adapter", adapter.name, table)
        row = {"name": adapter.name, "path": adapter.path, "size_bytes": adapter.size_bytes, "source": adapter.source,
               "sha256": None, "a1111_hash": None, "image_encoder": str(adapter.encoder_path), "model": model_id,
               "fits": None, "usable": True, "problem": header_problem(adapter.path),
               "clash": clash[0] if clash else None}
        if row["problem"]:
            row.update(fits=False, usable=False)
            rows.append(row)
            continue
        try:
            if hashes:
                row.update(sha256=file_sha256(adapter.path), a1111_hash=a1111_model_hash(adapter.path))
            problem = weights_problem(adapter) or encoder_problem(adapter)
            row["usable"] = problem is None  # not an adapter, or its encoder is missing: unusable with any model
            if problem is None and config is not None:
                use = IpAdapterUse(adapter.name, adapter.path, row["sha256"], row["a1111_hash"], adapter.root,
                                   adapter.subfolder, adapter.encoder_folder, "", None, (), 1.0)
                problem = fit_problem(use, config, model_id)
            row.update(fits=problem is None if (config is not None or problem) else None, problem=problem)
        except (InputError, OSError) as exc:
            row.update(fits=False, usable=False, problem=str(exc))
        rows.append(row)
    return rows
