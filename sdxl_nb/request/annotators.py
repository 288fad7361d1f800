"""ControlNet annotators (depth, lineart, openpose, soft edges...) through controlnet-aux, weights from a local folder."""

from __future__ import annotations

import sys
import threading
import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.errors import InputError

PROCESSOR_RES = 512  # A1111's default "Processor Res": the annotator runs at this short side, the map is resized after
ANNOTATORS_REPO = "lllyasviel/Annotators"  # where the weight files come from (hf download lllyasviel/Annotators FILE)


@dataclass(frozen=True)
class Annotator:
    detector: str  # controlnet_aux class name
    files: tuple[str, ...]  # weight files it reads from the annotator folder ("" for none)
    call: tuple[tuple[str, object], ...] = ()  # extra keyword arguments of its call


# A1111's module names. lineart_standard needs no weights (a blur and a threshold).
ANNOTATORS = {
    "lineart_standard": Annotator("LineartStandardDetector", ()),
    "depth_midas": Annotator("MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",)),
    "lineart_realistic": Annotator("LineartDetector", ("sk_model.pth", "sk_model2.pth")),
    "lineart_coarse": Annotator("LineartDetector", ("sk_model.pth", "sk_model2.pth"), (("coarse", True),)),
    "lineart_anime": Annotator("LineartAnimeDetector", ("netG.pth",)),
    "openpose": Annotator("OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")),
    "openpose_full": Annotator("OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
                               (("include_hand", True), ("include_face", True))),
    "softedge_hed": Annotator("HEDdetector", ("ControlNetHED.pth",)),
    "softedge_pidinet": Annotator("PidiNetDetector", ("table5_pidinet.pth",)),
    "normal_bae": Annotator("NormalBaeDetector", ("scannet.pt",)),
    "mlsd": Annotator("MLSDdetector", ("mlsd_large_512_fp32.pth",)),
}
ALIASES = {"depth": "depth_midas", "lineart": "lineart_realistic", "softedge": "softedge_hed", "hed": "softedge_hed",
           "pidinet": "softedge_pidinet", "normal": "normal_bae"}


def annotator_folder() -> Path | None:
    """SDXL_NB_ANNOTATORS, else the HF cache's lllyasviel/Annotators snapshot, else None."""
    if settings.annotators_dir():
        return Path(settings.annotators_dir()).expanduser()
    from sdxl_nb.config.registry import hf_cache_dir

    snapshots = hf_cache_dir() / ("models--" + ANNOTATORS_REPO.replace("/", "--")) / "snapshots"
    found = sorted(snapshots.glob("*"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return found[-1] if found else None


def check_annotator(name: str, label: str) -> dict[str, str]:
    """Before any work: controlnet-aux importable and every weight file present and accepted by the weights loader
    (a refused file is one line, before the job); {file: sha256} of those files."""
    import importlib.util

    from sdxl_nb.config.loras import file_sha256

    annotator = ANNOTATORS[name]
    if importlib.util.find_spec("controlnet_aux") is None:
        raise InputError(f"{label}: preprocessor {name!r} needs the controlnet-aux package (pip install controlnet-aux)")
    folder = annotator_folder()
    for file in annotator.files:
        if folder is None or not (folder / file).is_file():
            where = (f"{folder}" if folder is not None
                     else f"{settings.ANNOTATORS} (not set; nor is {ANNOTATORS_REPO} in the HF cache)")
            raise InputError(f"{label}: preprocessor {name!r} needs {file} in {where}; fetch it where a network "
                             f"exists with: hf download {ANNOTATORS_REPO} {file}")
    from sdxl_nb.backends.local.weights import load_state_dict

    for file in annotator.files:  # a file the weights loader refuses is refused here, before the job
        load_state_dict(folder / file, what=f"{label}: preprocessor {name!r} weight file")
    return {file: file_sha256(folder / file) for file in annotator.files}


class _CheckedTorch(types.ModuleType):
    """torch as controlnet-aux's modules see it while a detector loads: everything is torch's own except `load`,
    which is the project's weights loader (controlnet-aux calls torch.load on its files itself)."""

    def __init__(self, torch):
        super().__init__("torch")
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def load(self, f, map_location=None, **_ignored):
        from sdxl_nb.backends.local.weights import load_state_dict

        return load_state_dict(f, what="annotator weight file")


@contextmanager
def _checked_torch_load():
    """For the duration of a detector's from_pretrained, controlnet-aux's modules call the weights loader as their
    torch.load. Scoped to those modules' own `torch` name (not torch.load itself): no other caller in the
    process is affected, and the detectors' code (key renames, wrappers) stays controlnet-aux's."""
    import torch

    proxy = _CheckedTorch(torch)
    swapped = [module for name, module in list(sys.modules.items())
               if (name == "controlnet_aux" or name.startswith("controlnet_aux.")) and module is not None
               and getattr(module, "torch", None) is torch]
    for module in swapped:
        module.torch = proxy
    try:
        yield
    finally:
        for module in swapped:
            module.torch = torch


_DETECTORS: dict[tuple, object] = {}
_LOCK = threading.Lock()


def _detector(name: str):
    """The annotator's detector, loaded once per weight folder (on the CPU, float32: its map is then exact)."""
    annotator = ANNOTATORS[name]
    folder = annotator_folder()
    # The files' sizes and times in the key: weights replaced in a running kernel are read again.
    key = (annotator.detector, str(folder), tuple((file, (folder / file).stat().st_size,
                                                   (folder / file).stat().st_mtime_ns) for file in annotator.files))
    with _LOCK:
        if key not in _DETECTORS:
            import warnings

            with warnings.catch_warnings():  # its import warns about torch.jit and timm names, none of them ours
                warnings.simplefilter("ignore")
                import controlnet_aux

            cls = getattr(controlnet_aux, annotator.detector)
            if annotator.files:
                with _checked_torch_load():
                    _DETECTORS[key] = cls.from_pretrained(str(folder))
            else:
                _DETECTORS[key] = cls()
        return _DETECTORS[key]


def annotate(name: str, rgb, size: tuple[int, int]):
    """The annotator's map of an RGB image, at `size` (run at PROCESSOR_RES on the short side, then resized)."""
    import torch
    from PIL import Image

    annotator = ANNOTATORS[name]
    with torch.no_grad():
        result = _detector(name)(rgb, detect_resolution=PROCESSOR_RES, output_type="pil", **dict(annotator.call))
    result = result.convert("RGB")
    return result if result.size == tuple(size) else result.resize(tuple(size), Image.Resampling.LANCZOS)
