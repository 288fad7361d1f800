"""Set-level comparison of two groups of images: CMMD on CLIP embeddings, FID and KID through torchmetrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdxl_nb import settings
from sdxl_nb.errors import InputError

# google-research/cmmd (distance.py): a Gaussian RBF kernel of bandwidth 10, the MMD scaled by 1000.
CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")


def mmd(x: np.ndarray, y: np.ndarray, sigma: float = CMMD_SIGMA, scale: float = CMMD_SCALE) -> float:
    """CMMD's estimate (google-research/cmmd distance.mmd): scale x (mean k(x,x') + mean k(y,y') - 2 mean k(x,y))
    with k = exp(-|a-b|^2 / (2 sigma^2)), every mean over all pairs, diagonals included."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    gamma = 1 / (2 * sigma ** 2)
    x_norms, y_norms = (x * x).sum(axis=1), (y * y).sum(axis=1)

    def kernel_mean(a, b, a_norms, b_norms) -> float:
        return float(np.exp(-gamma * (a_norms[:, None] + b_norms[None, :] - 2 * a @ b.T)).mean())

    return scale * (kernel_mean(x, x, x_norms, x_norms) + kernel_mean(y, y, y_norms, y_norms)
                    - 2 * kernel_mean(x, y, x_norms, y_norms))


def _paths(group) -> list[Path]:
    """Image files of a group: paths, or a DataFrame selection with an image_path column."""
    paths = list(group["image_path"].dropna()) if hasattr(group, "columns") else list(group)
    if not paths:
        raise InputError("a group holds no images; accepted: image paths, or load_jobs rows with image_path")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise InputError(f"image {missing[0]} does not exist ({len(missing)} of {len(paths)} missing)")
    return [Path(p) for p in paths]


def _load(paths: list[Path]) -> list:
    from PIL import Image

    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def clip_embeddings(group, *, model: str | None = None, device: str | None = None, batch_size: int = 32):
    """Normalised CLIP image embeddings (numpy, one row per image) of a group, as CMMD reads them."""
    from sdxl_nb.analysis.scorers import clip_source, image_embeddings, load_clip, scoring_device

    device = scoring_device(device)
    clip_model, processor = load_clip(clip_source(model), device)
    paths = _paths(group)
    rows = [image_embeddings(clip_model, processor, _load(paths[i:i + batch_size]), device).cpu().numpy()
            for i in range(0, len(paths), batch_size)]
    return np.concatenate(rows)


def cmmd(group_a, group_b, *, model: str | None = None, device: str | None = None) -> float:
    """CMMD (Jayasumana et al. 2024) between two groups of images on the scorer's CLIP: 0 for identical sets."""
    return mmd(clip_embeddings(group_a, model=model, device=device), clip_embeddings(group_b, model=model,
                                                                                       device=device))


def inception_file() -> Path:
    """torch-fidelity's Inception weights from SDXL_NB_INCEPTION or torch hub's checkpoints folder; never fetched."""
    import torch

    given = settings.inception_path()
    path = Path(given).expanduser() if given else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        raise InputError(f"FID/KID need the Inception weights {INCEPTION_FILE} and none is at {path}; nothing is "
                         f"downloaded: fetch {INCEPTION_URL} where a network exists and set {settings.INCEPTION}")
    return path


def inception_features():
    """torch-fidelity's FID Inception (2048 pooled features), its weights read by the checked loader.

    torch-fidelity would unpickle the whole file (any object, not only tensors); it is given a copy holding only
    the tensors the weights-only loader read from it.
    """
    import tempfile

    import torch
    from torchmetrics.image.fid import NoTrainInceptionV3

    from sdxl_nb.backends.local.weights import load_state_dict

    state = load_state_dict(inception_file(), what="Inception weights")
    with tempfile.TemporaryDirectory() as folder:
        clean = Path(folder) / INCEPTION_FILE
        torch.save({key: value for key, value in state.items()}, clean)
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                  feature_extractor_weights_path=str(clean))


def _uint8(images: list):
    import torch

    return torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images])


def fid_kid(group_a, group_b, *, feature=None, kid_subset: int = 50) -> dict:
    """{"fid", "kid_mean", "kid_std"} of group_b against group_a (torchmetrics' metrics). `feature`: a torch
    module mapping uint8 image batches to features (default: the Inception, from a local file only; refused in one
    line when it is missing). Images of one group must share a size."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    feature = feature if feature is not None else inception_features()
    a, b = _load(_paths(group_a)), _load(_paths(group_b))
    if min(len(a), len(b)) < 2:
        raise InputError("FID and KID need at least 2 images in each group")
    for group in (a, b):
        if len({image.size for image in group}) > 1:
            raise InputError("FID/KID: the images of a group differ in size; accepted: one size per group")
    subset = min(kid_subset, len(a), len(b))
    fid = FrechetInceptionDistance(feature=feature)
    kid = KernelInceptionDistance(feature=feature, subset_size=subset)
    for metric in (fid, kid):
        metric.update(_uint8(a), real=True)
        metric.update(_uint8(b), real=False)
    kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}
