"""`upscale`: enlarge an existing image (Lanczos or an upscaler model) as its own recorded job, via run_job."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sdxl_nb.backends.base import Capabilities, RunHooks, RunOutput, RunPlan
from sdxl_nb.config.limits import MAX_INPUT_PIXELS, check_number
from sdxl_nb.config.upscalers import Upscaler, find_upscaler, recorded_upscaler
from sdxl_nb.errors import InputError
from sdxl_nb.jobs.files import JobFiles
from sdxl_nb.jobs.pipeline import JobResult, run_job
from sdxl_nb.request.resolve import InputImage, ResolvedRequest, read_input_image

MODE = "upscale"
MAX_SCALE = 8.0  # A1111's Extras tab goes to 8
DEFAULT_UPSCALER = "Lanczos"
NO_SCHEDULER = {"name": None, "class": None, "config": None}  # an upscale job runs no sampler


@dataclass(frozen=True)
class UpscaleSettings:
    scale: float
    upscaler: Upscaler
    width: int  # the result's size
    height: int

    def record(self, source: InputImage) -> dict:
        return {"scale": self.scale, "upscaler": self.upscaler.record(), "width": self.width, "height": self.height,
                "source_size": list(source.size)}


def check_upscale(scale: object, upscaler: object, size: tuple[int, int]) -> UpscaleSettings:
    """Validated settings (InputError, one line): a pixel upscaler (latent ones need a generation) and a result
    within the input pixel budget."""
    scale = check_number(scale, "scale")
    if not 1 < scale <= MAX_SCALE:
        raise InputError(f"scale {scale:g} is out of range; accepted: greater than 1, at most {MAX_SCALE:g}")
    chosen = find_upscaler(DEFAULT_UPSCALER if upscaler is None else upscaler)
    if chosen.kind == "latent":
        raise InputError(f"upscaler {chosen.name!r} works on latents during a generation (hires fix); accepted "
                         "here: Lanczos or an upscaler model (see `sdxl-nb upscalers`)")
    width, height = int(size[0] * scale), int(size[1] * scale)
    if width * height > MAX_INPUT_PIXELS:
        raise InputError(f"the result would be {width}x{height} ({width * height / 1e6:.0f} megapixels); accepted: "
                         f"at most {MAX_INPUT_PIXELS / 1e6:.0f} megapixels")
    return UpscaleSettings(scale=float(scale), upscaler=chosen, width=width, height=height)


@dataclass
class _NoModel:
    """What the pipeline's load step gets: an upscale job loads no SDXL model (the upscaler loads on first use)."""

    revision: str | None = None
    load_s: float = 0.0
    dtype_name: str | None = "float32"
    vae: dict | None = None
    warnings: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class UpscaleBackend:
    """This machine's device for an upscale job: no sampler, no model load; device and environment are the
    engine's (the record says where it ran, as every job's does)."""

    name = "local"
    capabilities = Capabilities(local_models=False, rerun=True)

    def __init__(self, engine, settings: UpscaleSettings, model_id: str):
        self.engine, self.settings = engine, settings
        self.device = engine.device
        self.loaded = {model_id: _NoModel()}  # nothing to load, nothing to announce as loaded

    def load(self, info, on_stage=None) -> _NoModel:
        return self.loaded[info.id]

    def run(self, plan: RunPlan, loaded, hooks: RunHooks) -> RunOutput:
        import time

        import sdxl_nb.backends.local.environment as env

        started = time.perf_counter()
        env.reset_peak_memory(self.device)
        image = upscale_file(plan.request.init_image.path, self.settings, self.device)
        hooks.progress({"step": 1, "total": 1, "chunk": 1, "chunks": 1, "images_done": 0, "images_in_chunk": 1,
                        "batch": 1, "elapsed": time.perf_counter() - started})
        hooks.images_done([(0, 0, image)], NO_SCHEDULER)
        return RunOutput(images=[(0, 0, image)], status="ok", generate_s=time.perf_counter() - started,
                         peak_memory_bytes=env.peak_memory(self.device), scheduler=NO_SCHEDULER, events=[],
                         warnings=[], chunk_size=1, calls=[[0]])

    def device_record(self) -> dict:
        return self.engine.device_record()

    def environment(self) -> dict:
        return self.engine.environment()

    @staticmethod
    def backend_record(_model_id: str) -> None:
        return None


def upscale_file(path: str, settings: UpscaleSettings, device: str = "cpu"):
    from PIL import Image

    from sdxl_nb.backends.local.upscale import upscale_to

    with Image.open(path) as source:
        rgb = source.convert("RGB")
    return upscale_to(rgb, settings.upscaler, (settings.width, settings.height), device)


class UpscaleJob:
    """The JobKind of an upscale: one image (the source's, enlarged); the record names the upscaler as its model."""

    def __init__(self, resolved: ResolvedRequest, settings: UpscaleSettings, source_parameters: str | None):
        self.resolved, self.settings, self.source_parameters = resolved, settings, source_parameters

    def run_plan(self, chunk_size, auto_tune) -> RunPlan:
        return RunPlan.for_request(self.resolved, chunk_size=1)

    def warnings(self, backend, loaded, info) -> list[str]:
        return []

    def start_record(self, record: dict) -> None:
        up = self.settings.upscaler
        record["model"] = {"id": up.name, "revision": up.sha256, "source": "upscaler", "dtype": "float32",
                           "vae": None}
        record["upscale"] = self.settings.record(self.resolved.init_image)

    def image_file(self, record, index, seed, image, call, moment: datetime):
        from PIL.PngImagePlugin import PngInfo

        from sdxl_nb.record.job_record import image_chunk
        from sdxl_nb.record.joblog import encode_record
        from sdxl_nb.record.naming import image_name
        from sdxl_nb.record.secrets import mask
        from sdxl_nb.record.store import encode_png

        name = image_name(moment, f"upscale {Path(record['init_image']['path']).stem[:12]}", seed, index)
        info = PngInfo()
        if self.source_parameters:  # as A1111's Extras: what made the image stays with it, secrets masked as ours are
            info.add_text("parameters", mask(self.source_parameters))
        info.add_text("postprocessing", mask(f"Postprocess upscale by: {self.settings.scale:g}, "
                                             f"Postprocess upscaler: {self.settings.upscaler.name}"))
        chunk = encode_record(image_chunk(record, index, seed, name)).decode("utf-8").rstrip("\n")
        info.add_itxt("sdxl_nb", chunk)
        entry = {"seed": seed, "index": index, "call": call}
        return name, encode_png(image, info), {"images": entry}

    def finish_files(self, record: dict, images: dict, files: JobFiles, moment: datetime) -> dict:
        return {}


def upscale(image: str | os.PathLike, *, scale: float = 2.0, upscaler: str | None = None,
            out_dir: str | os.PathLike | None = None, engine=None,
            on_progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
            on_stage: Callable[[str], None] | None = None, on_preview: Callable | None = None,
            on_warning: Callable[[str], None] | None = None) -> JobResult:
    """Enlarge an image by `scale` with Lanczos (default) or an upscaler model, as its own job in jobs.log (mode
    "upscale"): the source is kept under inputs/ by its sha256, the result is a PNG with the record. Bad input
    raises InputError before anything is written."""
    from sdxl_nb.config.presets import load_presets
    from sdxl_nb.config.registry import model_presets
    from sdxl_nb.config.tiny import TINY_MODEL_ID
    from sdxl_nb.jobs.pipeline import default_output_dir, kernel_backend
    from sdxl_nb.request.form import save_upload
    from sdxl_nb.request.resolve import show_path

    presets = load_presets()
    source = read_input_image(str(image) if isinstance(image, os.PathLike) else image, "image")
    settings = check_upscale(scale, upscaler, source.size)
    engine = engine or kernel_backend()
    if not engine.capabilities.local_models:
        raise InputError(f"upscale jobs run on this machine, not on the {getattr(engine, 'name', 'remote')} backend")
    if settings.upscaler.kind == "model":  # a damaged or unknown file is refused before anything is written
        from sdxl_nb.backends.local.upscale import load_upscaler

        load_upscaler(settings.upscaler)
    data = Path(source.path).read_bytes()
    folder = Path(out_dir) if out_dir is not None else default_output_dir()
    kept = save_upload(data, folder, f"image {show_path(image)}")  # inputs/<sha256>.png: the record points there
    parameters = _parameters(data)
    resolved = ResolvedRequest(
        mode=MODE, model=model_presets(presets)[TINY_MODEL_ID], scheduler=presets.schedulers[presets.defaults.scheduler],
        style=presets.styles[presets.defaults.style], prompt="", negative_prompt="", styled_prompt="",
        effective_negative_prompt="", steps=0, cfg=0.0, width=settings.width, height=settings.height, batch=1, seed=0,
        seeds=(0,), strength=None, init_image=InputImage(path=str(kept), sha256=source.sha256, size=source.size),
        mask_image=None, notes=(f"upscaled from {source.path}",))
    backend = UpscaleBackend(engine, settings, TINY_MODEL_ID)
    return run_job(UpscaleJob(resolved, settings, parameters), out_dir=folder, backend=backend,
                   on_progress=on_progress, should_stop=should_stop, on_stage=on_stage, on_preview=on_preview,
                   on_warning=on_warning, presets=presets)


def _parameters(data: bytes) -> str | None:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        text = getattr(image, "text", {}) or {}
        return text.get("parameters")


def rerun_upscale(record: dict, folder: str | os.PathLike, engine) -> dict:
    """The image an upscale record made, made again from its source (sha256 checked) and its upscaler."""
    source, settings = recorded_upscale(record, folder)
    return {0: upscale_file(source.path, settings, getattr(engine, "device", "cpu"))}


def recorded_upscale(record: dict, folder: str | os.PathLike) -> tuple[InputImage, UpscaleSettings]:
    """An upscale record's source (sha256 checked) and settings, its upscaler file trusted and unchanged."""
    from sdxl_nb.audit.replay_files import ReplayError, recorded_input
    from sdxl_nb.audit.replay_request import trusted_upscaler
    from sdxl_nb.config.trusted_folders import NotTrusted

    entry = record.get("upscale")
    if not isinstance(entry, dict):
        raise ReplayError("the upscale record has no 'upscale' settings")
    source = recorded_input(record, "init_image", Path(folder))
    if source is None:
        raise ReplayError("the upscale record has no source image")
    try:
        upscaler = recorded_upscaler(trusted_upscaler(entry.get("upscaler")))
    except NotTrusted:  # its file lies outside the user's upscaler folders: never loaded
        raise
    except (ValueError, InputError) as exc:
        raise ReplayError(str(exc)) from None
    scale, width, height = (entry.get(key) for key in ("scale", "width", "height"))
    # The ranges an upscale request accepts: a hostile record asks for no huge image.
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and 1 < scale <= MAX_SCALE
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in (width, height))
            and width * height <= MAX_INPUT_PIXELS):
        raise ReplayError("the upscale record has no usable scale, width and height")
    settings = UpscaleSettings(scale=float(entry["scale"]), upscaler=upscaler, width=int(entry["width"]),
                               height=int(entry["height"]))
    return source, settings
