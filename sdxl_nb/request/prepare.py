"""A request validated and resolved without running it (no torch, nothing written); then its inputs kept in its folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sdxl_nb.config.presets import Presets, load_presets
from sdxl_nb.config.registry import default_model_id, model_presets
from sdxl_nb.request.resolve import GenerationRequest, InputImage, ResolvedRequest, resolve


def prepare(request: GenerationRequest, presets: Presets | None = None) -> ResolvedRequest:
    """Validate and resolve a request: the styled prompt, the effective negative, the size, steps and cfg used and
    where each default came from (`notes`). Bad input raises InputError."""
    presets = presets or load_presets()
    if request.model is None:
        request = replace(request, model=default_model_id(presets))
    return resolve(request, presets, model_presets(presets))


def keep_inputs(r: ResolvedRequest, folder: Path) -> ResolvedRequest:
    """The request with each input image (init, mask, IP-Adapter images, control images) kept in the job's folder as
    inputs/<sha256>.<ext> and named by that path relative to the folder, as uploads are: the record points at a file
    the folder carries, so a re-run of a received folder reads it there. Called once the job was accepted; a copy
    that fails raises InputError and the copies made for this job go again."""
    from sdxl_nb.config.input_image import kept_copy, uploads_for_one_request

    def kept(image, label):
        return None if image is None else kept_copy(image, folder, label)

    with uploads_for_one_request():
        changes = {"init_image": kept(r.init_image, "init image"), "mask_image": kept(r.mask_image, "mask image")}
        if r.ip_adapter is not None:
            images = tuple(kept(image, f"IP-Adapter image {n}") for n, image in enumerate(r.ip_adapter.images, 1))
            changes["ip_adapter"] = replace(r.ip_adapter, images=images)
        units = []
        for n, unit in enumerate(r.controlnets):
            image = kept(InputImage(unit.image_path, unit.image_sha256, unit.image_size), f"ControlNet {n} control image")
            units.append(replace(unit, image_path=image.path))
        return replace(r, controlnets=tuple(units), **changes)
