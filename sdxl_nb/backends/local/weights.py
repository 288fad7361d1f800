"""The one door for weight files: checked safetensors, or PyTorch archives loaded weights-only after a sniff.

Every weight file the project loads passes here (or through `check_weights_file` just before a library that
only takes a path opens it). What a stranger's file can do is bounded by what is accepted:

- `.safetensors`: the header is checked first (config/safetensors_file.py), then safetensors' own reader loads it.
- `.pt .pth .ckpt .bin`: the file must be a PyTorch zip archive (no TorchScript: no `constants.pkl`, no
  `code/`) or the legacy torch.save format, told apart by their first bytes before anything is unpickled;
  then `torch.load(weights_only=True)`, whose unpickler builds tensors and plain containers only.
- The result must be a state dict: a dict of str keys holding tensors, nested dicts of them (training
  checkpoints wrap their weights: {"state_dict": ...}, {"params_ema": ...}, {"model": ...}, which spandrel and
  controlnet-aux unwrap), and plain training metadata (numbers, strings, lists of them, an optimizer's
  int-keyed state); at least one tensor.

Every refusal is one InputError line naming the file and why.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from sdxl_nb.config.safetensors_file import safetensors_header
from sdxl_nb.errors import InputError, one_line

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
SUFFIXES = (".safetensors", *TORCH_SUFFIXES)
_ZIP = b"PK\x03\x04"
# What torch.save's legacy format starts with: pickle protocol 2 of torch's magic number 0x1950A86A20F9469CFC6C.
_LEGACY = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
_MAX_DEPTH = 8  # nesting of containers in a state dict (real checkpoints use 3 or 4)


class WeightsRefused(InputError):
    """A weight file the loader refuses: "<what> <path> <reason>"; `reason` alone for callers that word it."""

    def __init__(self, what: str, path, reason: str):
        super().__init__(f"{what} {path} {reason}")
        self.reason = reason


def _torch_kind(path: Path, what: str) -> str:
    """"zip" or "legacy" for a plain PyTorch weights file; InputError for anything else, TorchScript included.
    Nothing is unpickled here."""
    import torch

    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY))
    if head.startswith(_LEGACY):
        return "legacy"
    if not head.startswith(_ZIP):
        raise WeightsRefused(what, path, "is not a PyTorch weights file (neither a torch.save zip archive nor its "
                         "legacy format); accepted: .safetensors, or .pt/.pth/.ckpt/.bin saved by torch.save")
    try:  # torch's own archive reader: the records torch.load would read
        records = torch._C.PyTorchFileReader(str(path)).get_all_records()
    except RuntimeError as exc:
        raise WeightsRefused(what, path, f"is a damaged archive ({one_line(exc)[:120]})") from None
    if "constants.pkl" in records or any(name.startswith("code/") for name in records):
        raise WeightsRefused(what, path, "is a TorchScript program, not weights: loading it would run its code; "
                         "accepted: .safetensors, or a state dict saved by torch.save")
    if "data.pkl" not in records:
        raise WeightsRefused(what, path, "is a zip archive but not one torch.save wrote (no data.pkl)")
    return "zip"


def check_weights_file(path: str | Path, *, what: str) -> None:
    """The checks that need no loading: a .safetensors header, or a PyTorch file's kind (no TorchScript). For a
    library that opens the file itself afterwards (diffusers' from_single_file, from_pretrained folders)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            safetensors_header(path)
        elif suffix in TORCH_SUFFIXES:
            _torch_kind(path, what)
        else:
            raise WeightsRefused(what, path, f"has an unknown weights format {suffix or '(no suffix)'!r}; accepted: "
                             f"{', '.join(SUFFIXES)}")
    except OSError as exc:
        raise WeightsRefused(what, path, f"cannot be read ({exc.strerror or exc})") from None
    except WeightsRefused:
        raise
    except InputError as exc:  # the header reader's line: "<path> <reason>"
        raise WeightsRefused(what, path, str(exc).removeprefix(f"{path} ")) from None


def check_weights_folder(folder: str | Path, *, what: str) -> None:
    """check_weights_file for every weight file directly in a model folder (what diffusers and transformers
    may open there: .safetensors first, else .bin)."""
    for path in sorted(Path(folder).glob("*")):
        if path.suffix.lower() in SUFFIXES and path.is_file():
            check_weights_file(path, what=what)


def _plain(value, depth: int = 0) -> bool:
    import torch

    if isinstance(value, (torch.Tensor, int, float, str, bool, type(None), torch.dtype, torch.device)):
        return True
    if depth >= _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v, depth + 1) for v in value)
    return False


def _has_tensor(value, depth: int = 0) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict) and depth < _MAX_DEPTH:
        return any(_has_tensor(v, depth + 1) for v in value.values())
    return False


def load_state_dict(path: str | Path, *, what: str, device: str = "cpu") -> dict:
    """The tensors of a weight file (see the module docstring for what is accepted); `what` names the file's role
    in messages ("upscaler 'x4'", "annotator file"). Refusals are one InputError line naming the file."""
    import torch

    path = Path(path)
    check_weights_file(path, what=what)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=device)
        except Exception as exc:  # safetensors' own checks (overlapping offsets...): still its refusal
            raise WeightsRefused(what, path, f"could not be read by safetensors ({one_line(exc)[:200]})") from None
    kind = _torch_kind(path, what)
    try:
        state = torch.load(path, map_location=device, weights_only=True, mmap=kind == "zip" and device == "cpu")
    except pickle.UnpicklingError:
        # torch's own message advises turning the weights-only check off: never ours to give
        raise WeightsRefused(what, path, "holds Python objects besides tensors: loading them could run code; "
                         "accepted: a state dict of tensors (.safetensors preferred)") from None
    except Exception as exc:  # a damaged archive: torch raises RuntimeError, EOFError, ValueError...
        reason = one_line(exc)
        reason = reason if "weights_only" not in reason else type(exc).__name__
        raise WeightsRefused(what, path, f"could not be read as PyTorch weights ({reason[:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsRefused(what, path, f"is not a plain state dict: it holds a {type(state).__name__}"
                         f"{'' if not isinstance(state, dict) else ' with non-text keys'}; accepted: a dict of "
                         "named tensors")
    if not _plain(state) or not _has_tensor(state):
        raise WeightsRefused(what, path, "is not a plain state dict: it holds no tensors or other kinds of values "
                         "than tensors, numbers and text in dicts; accepted: a dict of named tensors")
    return state
