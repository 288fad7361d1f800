"""What to tell the user before a run: quality lint, resized inputs and the memory check."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sdxl_nb import settings
from sdxl_nb.config.presets import Presets
from sdxl_nb.config.registry import ModelInfo
from sdxl_nb.record.joblog import JOBS_LOG, tail_records
from sdxl_nb.request.lint import lint
from sdxl_nb.request.memory import MemoryAdvice, MemoryRequest, advise, calibrate
from sdxl_nb.request.resolve import ResolvedRequest


@dataclass
class Preflight:
    """A validated request and the warnings to show before running it."""

    resolved: ResolvedRequest
    warnings: list[str] = field(default_factory=list)


def input_warnings(r: ResolvedRequest) -> list[str]:
    return [note for note in r.notes if note.startswith("init image resized")] + list(r.warnings)


def _folder(info: ModelInfo) -> Path:
    if info.source == "embedded":
        from sdxl_nb.config.embedded_models import embedded_folder

        return embedded_folder(info.id)
    return Path(info.path)


def _vae_facts(info: ModelInfo, folder: Path) -> tuple[bool | None, str | None]:
    """(does the model's VAE upcast itself in float16, the dedicated VAE the engine will use) from files only."""
    from sdxl_nb.config.registry import locate_model
    from sdxl_nb.errors import ModelUnavailableError

    dedicated = None
    if info.preset.vae:
        try:
            locate_model(info.preset.vae, need_pipeline=False)
            dedicated = info.preset.vae
        except ModelUnavailableError:
            pass
    try:
        config = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, dedicated
    return bool(config.get("force_upcast", True)), dedicated


def check_request(r: ResolvedRequest, info: ModelInfo, *, engine=None) -> list[str]:
    """Warnings for a resolved request before anything runs (reads the model's VAE config; no device work).

    With an engine that already holds the model, its loaded VAE is used; otherwise the files are read. The float16-VAE rule needs the dtype: the engine's, else SDXL_NB_DTYPE, else skipped.
    """
    if engine is not None and not engine.capabilities.local_models:
        # A remote server (ComfyUI) holds the model: only the settings can be checked here.
        return lint(r) + input_warnings(r)
    loaded = engine.loaded.get(info.id) if engine is not None else None
    if loaded is not None:
        dtype, upcasts = loaded.dtype_name, bool(loaded.pipe.vae.config.force_upcast)
        dedicated = (loaded.vae or {}).get("id")
    else:
        folder = _folder(info)
        dtype = str(engine.dtype).removeprefix("torch.") if engine is not None else settings.dtype()
        dtype = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype)
        upcasts, dedicated = _vae_facts(info, folder)
    warnings = lint(r, dtype=dtype, vae_upcasts=upcasts, dedicated_vae=dedicated)
    return warnings + input_warnings(r)


def preflight(request, presets: Presets | None = None, *, engine=None) -> Preflight:
    """Validate and resolve a request and list its warnings, before running it (nothing written).

    Raises InputError (or ModelUnavailableError) exactly as `generate` would.
    """
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import find_model
    from sdxl_nb.errors import ModelUnavailableError
    from sdxl_nb.request.prepare import prepare

    presets = presets or load_presets()
    resolved = prepare(request, presets)
    info = find_model(resolved.model.id, presets)
    if not info.available:
        raise ModelUnavailableError(info.reason)
    return Preflight(resolved, check_request(resolved, info, engine=engine))


def memory_check(r: ResolvedRequest, facts: dict, *, images_at_once: int, device_name: str,
                 folder: Path) -> MemoryAdvice:
    """The memory advice for a run with a loaded model: `facts` from Engine.memory_facts, calibrated from the
    output folder's jobs.log when it holds enough records of this model on this device."""
    components = dict(facts["component_bytes"])
    if r.refiner is not None and r.refiner_switch < 1:  # the refiner's own UNet sits beside the base's
        from sdxl_nb.config.refiners import refiner_unet_bytes

        components["refiner_unet"] = refiner_unet_bytes(r.refiner.id, r.refiner.source, facts["dtype"])
    if r.controlnets:  # their weights join the model's (the calibration below stays the model's own)
        from sdxl_nb.request.control import controlnet_weight_bytes

        components.update(controlnet_weight_bytes(r.controlnets, facts["dtype"]))
    if r.ip_adapter is not None and "image_encoder" not in components:  # loaded by the job itself
        from sdxl_nb.config.ip_adapters import weight_bytes
        from sdxl_nb.request.memory import DTYPE_BYTES

        components.update(weight_bytes(r.ip_adapter, DTYPE_BYTES.get(facts["dtype"], 2)))
    width, height = r.output_size  # a hires job peaks in its second pass, at the larger size
    request = MemoryRequest(component_bytes=components, dtype=facts["dtype"], width=width,
                            height=height, images_at_once=images_at_once, cfg=r.cfg,
                            vae_float32=facts["dtype"] == "float32" or facts["vae_force_upcast"])
    calibration = calibrate(tail_records(folder / JOBS_LOG), model_id=r.model.id, dtype=facts["dtype"],
                            device_name=device_name, weights_bytes=sum(facts["component_bytes"].values()))
    return advise(request, facts["free_bytes"], calibration=calibration, in_use_bytes=facts["in_use_bytes"])


def memory_summary(advice: MemoryAdvice) -> dict:
    """What the record keeps of the memory check (later runs compare it with the measured peak)."""
    return {"estimate_bytes": advice.estimate.peak_bytes, "needed_bytes": advice.needed_bytes,
            "free_bytes": advice.free_bytes, "source": advice.estimate.source, "risky": advice.risky}
