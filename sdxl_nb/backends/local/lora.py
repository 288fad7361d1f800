"""LoRAs on the local engine: does a file fit the model (before any work), load once as a peft adapter, switch per job.

A LoRA is loaded into the shared UNet and text encoders once per kernel, as an adapter named after its
content hash, and stays there; each job activates its set with its weights (`set_adapters`), and a job
without LoRAs turns every adapter off, which runs the base layers alone: the same pixels as before any
LoRA was loaded. Both key layouts load through diffusers: kohya (A1111) and diffusers/PEFT.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path

import torch

from sdxl_nb.config.loras import LoraUse, safetensors_header
from sdxl_nb.errors import InputError

COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


def adapter_name(lora: LoraUse) -> str:
    """The adapter's name in the model: the file's content, so a changed file is a new adapter."""
    return f"lora_{lora.sha256[:16]}"


def _layer(name: str) -> str:
    # transformers 5's CLIPTextModel has no `text_model.` level (CLIPTextModelWithProjection keeps it); peft
    # matches module names by suffix, so a layer is known by its name without that level.
    return name.replace(".text_model.", ".")


def layer_shapes(pipe) -> dict[str, tuple[int, ...]]:
    """"component.module" -> weight shape of every layer a LoRA could target (taken before any adapter)."""
    shapes = {}
    for component in COMPONENTS:
        model = getattr(pipe, component, None)
        for name, module in (model.named_modules() if model is not None else ()):
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.ndim >= 2 and "lora_" not in name:
                shapes[_layer(f"{component}.{name.removesuffix('.base_layer')}")] = tuple(weight.shape)
    return shapes


def meta_layer_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """The same table for a model folder that is not loaded: its modules built on the meta device (no weights)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    class Parts:
        pass

    parts = Parts()
    with init_empty_weights():
        parts.unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text("utf-8")))
        parts.text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        parts.text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2"))
    return layer_shapes(parts)


def _peft_keys(path: str, unet_config) -> dict[str, tuple[int, ...]]:
    """The file's LoRA factors as diffusers will load them: "component.module.lora_A/B.weight" -> shape.

    Only the header and the (scalar) alphas are read; the factors are meta tensors.
    """
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )
    from safetensors import safe_open

    header = safetensors_header(path)
    state = {}
    with safe_open(path, framework="pt") as handle:
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            state[key] = handle.get_tensor(key) if key.endswith(".alpha") else torch.empty(entry["shape"], device="meta")
    converted, _alphas = StableDiffusionXLPipeline.lora_state_dict(state, unet_config=unet_config)
    keys = {}
    for component in COMPONENTS:
        part = {k[len(component) + 1:]: v for k, v in converted.items() if k.startswith(component + ".")}
        if not part:
            continue
        if component == "unet":
            part = part if "lora_A" in next(iter(part)) else convert_unet_state_dict_to_peft(part)
        else:
            part = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
        keys.update({_layer(f"{component}.{k}"): tuple(v.shape) for k, v in part.items()})
    return keys


def fit_problem(lora: LoraUse, shapes: dict[str, tuple[int, ...]], unet_config, model_id: str) -> str | None:
    """Why a LoRA file cannot run on the model (one line), or None when every one of its layers fits."""
    header = safetensors_header(lora.path)
    keys = [k for k in header if k != "__metadata__"]
    base = str((header.get("__metadata__") or {}).get("ss_base_model_version", ""))
    if any(k.startswith("lora_te_") for k in keys) or (base and not base.startswith("sdxl")):
        made_for = base or "SD 1.x/2.x (one text encoder)"
        return (f"LoRA {lora.name!r} was made for {made_for}, not for an SDXL model like {model_id}; "
                "use an SDXL LoRA")
    try:
        factors = _peft_keys(lora.path, unet_config)
    except (ValueError, KeyError, RuntimeError) as exc:
        return f"LoRA {lora.name!r} ({lora.path}) is not a LoRA file diffusers can read ({exc})"
    layers = {k[:-len(s)]: None for k in factors for s in _SUFFIXES if k.endswith(s)}
    if not layers:
        return f"LoRA {lora.name!r} ({lora.path}) has no LoRA layers (no lora_down/lora_up or lora_A/lora_B keys)"
    missing = [layer for layer in layers if layer not in shapes]
    wrong = []
    for layer in layers:
        if layer in shapes:
            down, up = factors.get(layer + ".lora_A.weight"), factors.get(layer + ".lora_B.weight")
            target = shapes[layer]
            if down is None or up is None or down[1] != target[1] or up[0] != target[0]:
                wrong.append(f"{layer} (LoRA {up[0] if up else '?'}x{down[1] if down else '?'}, model "
                             f"{target[0]}x{target[1]})")
    if len(missing) == len(layers):
        return (f"LoRA {lora.name!r} matches nothing in {model_id}: none of its {len(layers)} layers exists there "
                f"(e.g. {missing[0]}); it was made for another model")
    if missing or wrong:
        example = wrong[0] if wrong else f"{missing[0]} does not exist"
        return (f"LoRA {lora.name!r} does not fit {model_id}: {len(missing) + len(wrong)} of its {len(layers)} "
                f"layers have no counterpart of that shape (e.g. {example}); it was made for another model")
    return None


class LoraSwitch:
    """The adapters of one loaded model: loaded once each, switched per job."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.shapes = layer_shapes(pipe)  # before any adapter wraps the layers
        self.adapters: dict[str, dict] = {}  # adapter name -> {"name", "layers", "applied"}
        self.active: tuple = ()

    def problem(self, lora: LoraUse, model_id: str) -> str | None:
        if adapter_name(lora) in self.adapters:
            return None  # loaded already: it fitted
        return fit_problem(lora, self.shapes, self.pipe.unet.config, model_id)

    def apply(self, loras) -> tuple[list[str], list[str]]:
        """Make exactly these LoRAs (at their weights) active; (events, warnings)."""
        events, warnings = [], []
        for lora in loras:
            name = adapter_name(lora)
            if name not in self.adapters:
                events.append(self._load(lora, name))
                entry = self.adapters[name]
                if entry["applied"] < entry["layers"]:
                    warnings.append(f"LoRA {lora.name!r}: diffusers applied {entry['applied']} of its "
                                    f"{entry['layers']} layers (the rest have no counterpart it maps to)")
        wanted = tuple((adapter_name(lora), lora.weight) for lora in loras)
        if wanted == self.active:
            return events, warnings
        started = time.perf_counter()
        if wanted:
            self.pipe.enable_lora()
            self.pipe.set_adapters([name for name, _ in wanted], adapter_weights=[weight for _, weight in wanted])
        elif self.adapters:
            self.pipe.disable_lora()  # base layers alone: the pixels of a model without adapters
        self.active = wanted
        events.append(f"LoRA set switched to {', '.join(f'{lora.name}:{lora.weight:g}' for lora in loras) or 'none'} "
                      f"in {time.perf_counter() - started:.3f} s (no reload)")
        return events, warnings

    def _load(self, lora: LoraUse, name: str) -> str:
        from safetensors.torch import load as load_safetensors

        from sdxl_nb.backends.local.weights import check_weights_file

        started = time.perf_counter()
        # Checked by the weights checker, then read once: the hash ties the bytes loaded to the file checked (and to
        # the request); safetensors parses those bytes itself.
        check_weights_file(lora.path, what=f"LoRA {lora.name!r}")
        data = Path(lora.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != lora.sha256:
            raise InputError(f"LoRA {lora.name!r} ({lora.path}) changed since the request was checked; run it again")
        state = load_safetensors(data)
        layers = len({k.rsplit(".lora", 1)[0] for k in state if ".lora_A." in k or ".lora_down." in k})
        with warnings.catch_warnings():  # peft warns that a second adapter joins the first: that is the design
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            self.pipe.load_lora_weights(state, adapter_name=name)
        applied = sum(1 for component in COMPONENTS for module in getattr(self.pipe, component).modules()
                      if name in getattr(module, "lora_A", {}))
        self.adapters[name] = {"name": lora.name, "layers": layers, "applied": applied}
        return f"loaded LoRA {lora.name} ({applied} layers) in {time.perf_counter() - started:.2f} s"
