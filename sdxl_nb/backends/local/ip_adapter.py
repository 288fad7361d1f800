"""IP-Adapter on the local engine: fits the model (before any work), loads into the shared UNet, off again after.

diffusers' `load_ip_adapter` replaces the UNet's attention processors, adds `encoder_hid_proj` and registers
the CLIP image encoder on the pipeline it is called on. The UNet is shared by every mode's pipeline, so the
switch keeps the processors the model had before, puts them back exactly when a job without an adapter comes
(the next job's pixels are those of a model that never saw one), and keeps the last adapter's converted
modules (one, as A1111's ControlNet model cache does by default) so the same adapter again is no reload.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from PIL import Image

from sdxl_nb.config.ip_adapters import IpAdapterUse, fit_problem
from sdxl_nb.errors import InputError


def unet_config_of(loaded=None, folder: Path | None = None) -> dict:
    if loaded is not None:
        return dict(loaded.pipe.unet.config)
    return json.loads((Path(folder) / "unet" / "config.json").read_text(encoding="utf-8"))


def check_ip_adapter(ip: IpAdapterUse, model_id: str, options, *, loaded=None, folder: Path | None = None) -> None:
    """Refuse, before any work, an adapter that does not fit the model or the engine's options (InputError)."""
    clash = [name for name in ("fp8",) if getattr(options, name, False)]
    if clash:
        raise InputError(f"IP-Adapter cannot run with the {' and '.join(clash)} engine option; configure the "
                         "engine without it")
    problem = fit_problem(ip, unet_config_of(loaded, folder), model_id)
    if problem:
        raise InputError(problem)
    from sdxl_nb.backends.local.weights import check_weights_folder

    check_weights_folder(ip.encoder_path, what=f"IP-Adapter {ip.name!r} image encoder")


class IpAdapterSwitch:
    """The IP-Adapter state of one loaded model: off (the original processors) or one adapter on, at a scale."""

    def __init__(self, loaded):
        self.loaded = loaded
        unet = loaded.pipe.unet
        self.original = dict(unet.attn_processors)  # before any adapter: what "off" puts back
        self.original_proj = unet.encoder_hid_proj
        self.original_type = unet.config.encoder_hid_dim_type
        self.cached: dict | None = None  # the last adapter: key, processors, projection, encoder, feature extractor
        self.active: tuple | None = None

    def _pipes(self) -> list:
        return [self.loaded.pipe, *self.loaded.derived.values()]

    def apply(self, ip: IpAdapterUse | None) -> list[str]:
        """Make exactly this adapter (None: none) active; the events to record."""
        unet = self.loaded.pipe.unet
        if ip is None:
            if self.active is None:
                return []
            self._restore_unet()
            for pipe in self._pipes():
                pipe.register_modules(image_encoder=None, feature_extractor=None)
            self.active = None
            return ["IP-Adapter off: the model's own attention processors restored"]
        events = []
        if self.cached is None or self.cached["key"] != ip.key:
            events.append(self._load(ip))
        elif self.active != ip.key:
            # The projection first: a Plus adapter's resampler has attention layers of its own among the processors.
            unet.encoder_hid_proj = self.cached["projection"]
            unet.set_attn_processor(dict(self.cached["processors"]))
            unet.config.encoder_hid_dim_type = "ip_image_proj"
            events.append(f"IP-Adapter {ip.name} on again (kept in memory: no reload)")
        for pipe in self._pipes():
            pipe.register_modules(image_encoder=self.cached["encoder"], feature_extractor=self.cached["features"])
        self.loaded.pipe.set_ip_adapter_scale(ip.scale)
        self.active = ip.key
        return events

    def _load(self, ip: IpAdapterUse) -> str:
        started = time.perf_counter()
        if self.active is not None or self.cached is not None:  # another adapter: from the original state
            self.apply(None)
            self.cached = None
        pipe = self.loaded.pipe
        pipe.register_modules(image_encoder=None, feature_extractor=None)
        from sdxl_nb.backends.local.weights import check_weights_file, check_weights_folder

        # diffusers and transformers open these files themselves, only after the weights checker accepted them
        # (the adapter's .safetensors header; the encoder folder's every weight file, a .bin read weights-only).
        check_weights_file(ip.path, what=f"IP-Adapter {ip.name!r}")
        check_weights_folder(ip.encoder_path, what=f"IP-Adapter {ip.name!r} image encoder")
        try:
            pipe.load_ip_adapter(ip.root, subfolder=ip.subfolder, weight_name=Path(ip.path).name,
                                 image_encoder_folder=ip.encoder_folder, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            self._restore_after_failure()
            from sdxl_nb.errors import one_line

            raise InputError(f"IP-Adapter {ip.name!r} could not be loaded from {ip.root}: {one_line(exc)}") from exc
        unet = pipe.unet
        target = pipe._execution_device
        if pipe.image_encoder is not None and pipe.image_encoder.device != target:
            # With model CPU offload the pipeline reports the CPU and the encoder would stay there while its
            # inputs go to the GPU: it is kept on the GPU instead (correct, at the cost of its memory).
            pipe.image_encoder.to(target)
        self.cached = {"key": ip.key, "processors": dict(unet.attn_processors), "projection": unet.encoder_hid_proj,
                       "encoder": pipe.image_encoder, "features": pipe.feature_extractor}
        return (f"loaded IP-Adapter {ip.name} with its image encoder in {time.perf_counter() - started:.2f} s "
                "(kept for the next job with it)")

    def _restore_unet(self) -> None:
        unet = self.loaded.pipe.unet
        unet.encoder_hid_proj = self.original_proj  # first: the processors to restore are the model's own alone
        unet.set_attn_processor(dict(self.original))
        unet.config.encoder_hid_dim_type = self.original_type

    def _restore_after_failure(self) -> None:
        self._restore_unet()
        for pipe in self._pipes():
            pipe.register_modules(image_encoder=None, feature_extractor=None)
        self.active, self.cached = None, None


def apply_ip_adapter(loaded, ip: IpAdapterUse | None) -> list[str]:
    """Put the job's adapter (or none) on the loaded model; the switch lives on the model, made on first use."""
    switch = getattr(loaded, "ip_adapter", None)
    if switch is None:
        if ip is None:
            return []
        switch = loaded.ip_adapter = IpAdapterSwitch(loaded)
    return switch.apply(ip)


def ip_adapter_arguments(ip: IpAdapterUse | None) -> dict:
    """The pipeline call's `ip_adapter_image`: one adapter, its images (their tokens are concatenated)."""
    if ip is None:
        return {}
    images = []
    for image in ip.images:
        with Image.open(image.path) as opened:
            images.append(opened.convert("RGB"))
    return {"ip_adapter_image": [images]}
