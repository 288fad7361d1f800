"""The ComfyUI backend: a plan runs on a ComfyUI server; the job pipeline saves and records it like a local run.

`ComfyBackend` implements the backend contract (sdxl_nb.backends.base) and declares what a server
cannot do (previews, memory facts, slerp, prompt blends). The record gains `backend: {name: "comfy",
server, checkpoint}`. Each image is its own prompt (batch 1, its own seed and prompt), so every image
keeps the seed the record and its PNG name.
"""

from __future__ import annotations

import copy
import io
import os
import threading
import time
from dataclasses import dataclass, field, replace

from sdxl_nb import settings
from sdxl_nb.backends.base import Capabilities, RunHooks, RunOutput, RunPlan
from sdxl_nb.backends.comfy.client import ComfyClient, ComfyError, server_folder
from sdxl_nb.backends.comfy.progress import SamplerProgress
from sdxl_nb.backends.comfy.workflow import build_workflow, comfy_sampler, default_checkpoint
from sdxl_nb.config.limits import strength_steps
from sdxl_nb.errors import InputError, ModelUnavailableError


@dataclass
class RemoteModel:
    """What the server will load: the checkpoint file and the VAE file ("" = the checkpoint's own)."""

    info: object
    checkpoint: str
    vae_name: str
    load_s: float
    warnings: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # what the engine did at load (none for a remote server)
    source: str = "comfy"
    revision: str | None = None  # a server file has no revision we can see
    dtype_name: str | None = None  # ComfyUI picks the precision itself

    @property
    def vae(self) -> dict | None:
        return {"id": self.vae_name, "revision": None} if self.vae_name else None


class ComfyBackend:
    """A ComfyUI server as a backend: pass it as `engine=` to any job, or call `.generate`."""

    name = "ComfyUI"
    capabilities = Capabilities(previews=False, memory_facts=False, configure=False, scheduler_config=False,
                                noise_mix=False, prompt_blend=False, prompt_weighting=False, lora=True,
                                embeddings=True, local_models=False,
                                rerun=True, refiner=True, hires=True, ip_adapter=False, controlnet=True)

    def __init__(self, url: str | None = None, *, checkpoint: str | None = None, vae: str | None = None,
                 refiner_checkpoint: str | None = None, timeout_s: float = 30.0, job_timeout_s: float = 900.0, retries: int = 3,
                 poll_interval_s: float = 1.0, use_websocket: bool = True):
        url = url or settings.comfy_url()
        if not url:
            raise InputError(f"the ComfyUI backend needs a server URL (--comfy-url or {settings.COMFY_URL}), "
                             "e.g. http://127.0.0.1:8188")
        try:
            self.client = ComfyClient(url, timeout_s=timeout_s, retries=retries, poll_interval_s=poll_interval_s,
                                      use_websocket=use_websocket)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.checkpoint, self.vae_choice, self.job_timeout_s = checkpoint, vae, job_timeout_s
        self.refiner_checkpoint = refiner_checkpoint or None  # the refiner's file on the server; None: by its repo
        self.device = f"comfy {self.client.server}"
        self.loaded: dict[str, RemoteModel] = {}
        self.lock = threading.RLock()
        self._stats: dict | None = None

    def with_files(self, checkpoint: str | None, vae: str | None, refiner_checkpoint: str | None = None
                   ) -> ComfyBackend:
        """The same server (and connection settings) loading other files: a re-run uses the recorded ones."""
        twin = copy.copy(self)
        twin.checkpoint, twin.vae_choice, twin.refiner_checkpoint = checkpoint, vae, refiner_checkpoint
        twin.loaded, twin.lock = {}, threading.RLock()
        return twin

    def backend_record(self, model_id: str) -> dict:
        return self.record(model_id)

    def record(self, model_id: str | None = None) -> dict:
        """The record's `backend` field: which server (never its credentials) and which checkpoint."""
        record = {"name": "comfy", "server": self.client.server}
        if model_id:
            record["checkpoint"] = self.checkpoint or default_checkpoint(model_id)
        if self.refiner_checkpoint:
            record["refiner_checkpoint"] = self.refiner_checkpoint
        return record

    def refiner_file(self, resolved) -> str:
        """The refiner checkpoint file the workflow loads: the one chosen, else <refiner repo name>.safetensors."""
        return self.refiner_checkpoint or default_checkpoint(resolved.refiner.id)

    def generate(self, request=None, **kwargs):
        return generate_remote(request, backend=self, **kwargs)

    # ---- the engine interface ----
    def load(self, info, on_stage=None) -> RemoteModel:
        """Check that the server answers and has the checkpoint (and VAE); nothing is loaded here."""
        stage = on_stage or (lambda _name: None)
        with self.lock:
            if info.id in self.loaded:
                return self.loaded[info.id]
            started = time.perf_counter()
            stage(f"connecting to ComfyUI at {self.client.server}")
            self._stats = self.client.system_stats()
            checkpoint = self.checkpoint or default_checkpoint(info.id)
            available = self.client.choices("CheckpointLoaderSimple", "ckpt_name")
            if available is not None and checkpoint not in available:
                raise ModelUnavailableError(f"checkpoint {checkpoint!r} is not on the ComfyUI server "
                                            f"{self.client.server} ({server_folder('checkpoints')}); available: {', '.join(available) or 'none'} "
                                            "(choose one of them as the checkpoint)")
            vae_name, warnings = self._vae(info)
            loaded = RemoteModel(info=info, checkpoint=checkpoint, vae_name=vae_name,
                                 load_s=time.perf_counter() - started, warnings=warnings)
            self.loaded[info.id] = loaded
            return loaded

    def _vae(self, info) -> tuple[str, list[str]]:
        wanted = self.vae_choice
        if wanted == "":
            return "", []
        vaes = self.client.choices("VAELoader", "vae_name")
        if wanted:
            if vaes is not None and wanted not in vaes:
                raise ModelUnavailableError(f"VAE {wanted!r} is not on the ComfyUI server {self.client.server} "
                                            f"({server_folder('vae')}); "
                                            f"available: {', '.join(vaes) or 'none'}")
            return wanted, []
        if not info.preset.vae:
            return "", []
        name = default_checkpoint(info.preset.vae)
        if vaes is not None and name not in vaes:
            # As locally when the dedicated VAE is not cached: go on with the checkpoint's own, and say so.
            return "", [f"dedicated VAE {name} is not on the ComfyUI server; using the checkpoint's own VAE"]
        return name, []

    def check_networks(self, _info, resolved) -> None:
        """Before any work: the server must hold every file the workflow names: LoRAs, embeddings, the refiner's
        checkpoint, a hires upscaler model, ControlNets. A missing one is refused in one line (exit 2) naming the
        server folder it belongs in, as ComfyUI's folder_paths names it."""
        from sdxl_nb.backends.comfy.control_nodes import missing_controlnets
        from sdxl_nb.backends.comfy.workflow import lora_file_name, refiner_split, upscaler_file_name

        if resolved.controlnets:
            missing_controlnets(self.client, resolved)  # a preprocessor the server lacks is refused first
        wanted = [("LoraLoader", "lora_name", lora_file_name(lora), "LoRA", "loras") for lora in resolved.loras]
        if resolved.refiner is not None and resolved.refiner_switch < 1:
            refiner_split(resolved)  # a switch that leaves either model no step: the local run's line, before work
            wanted.append(("CheckpointLoaderSimple", "ckpt_name", self.refiner_file(resolved), "refiner checkpoint",
                           "checkpoints"))
        if resolved.hires is not None and resolved.hires.upscaler.kind == "model":
            wanted.append(("UpscaleModelLoader", "model_name", upscaler_file_name(resolved.hires), "upscaler",
                           "upscale_models"))
        for node, choice, name, what, folder in wanted:
            available = self.client.choices(node, choice)
            if available is not None and name not in available:
                raise ModelUnavailableError(f"{what} {name} is not on the ComfyUI server {self.client.server} "
                                            f"({server_folder(folder)}); available: {', '.join(available) or 'none'}")
        if resolved.embeddings:
            self._check_embeddings(resolved)

    def _check_embeddings(self, resolved) -> None:
        """The server's GET /embeddings lists its embedding names without extension (server.py get_embeddings); a
        server without that route is not asked (its text encoder names a missing one when the workflow runs)."""
        available = self.client.embeddings()
        if available is None:
            return
        missing = [e.name for e in resolved.embeddings if e.name not in available]
        if missing:
            raise ModelUnavailableError(f"embedding {', '.join(missing)} is not on the ComfyUI server "
                                        f"{self.client.server} ({server_folder('embeddings')}); available: "
                                        f"{', '.join(available) or 'none'}")

    def _system_stats(self) -> dict:
        """The server's /system_stats, asked once (at load, or here when an audit asks before any load)."""
        if self._stats is None:
            self._stats = self.client.system_stats()
        return self._stats or {}

    def device_record(self) -> dict:
        devices = self._system_stats().get("devices") or [{}]
        return {"type": "comfy", "name": devices[0].get("name") or "ComfyUI", "server": self.client.server}

    def environment(self) -> dict:
        import platform

        import sdxl_nb

        system = self._system_stats().get("system") or {}
        devices = self._system_stats().get("devices") or [{}]
        return {"python": system.get("python_version"), "platform": system.get("os"),
                "torch": system.get("pytorch_version"), "diffusers": None, "transformers": None,
                "sdxl_nb": sdxl_nb.__version__, "cuda": None, "gpu": devices[0].get("name"), "deterministic": False,
                "dtype": None, "attention": None, "comfyui": system.get("comfyui_version"),
                "client_python": platform.python_version()}

    def run(self, plan: RunPlan, loaded: RemoteModel, hooks: RunHooks | None = None) -> RunOutput:
        """One prompt per image (its own seed and prompt); a stop interrupts the running prompt and keeps the
        finished images. `plan.chunk_size` and `plan.auto_tune` do not apply: the server manages its memory."""
        hooks = hooks or RunHooks()
        resolved = plan.request
        with self.lock:
            started = time.perf_counter()
            events: list[str] = [f"ComfyUI {self.client.server}: checkpoint {loaded.checkpoint}, "
                                 f"VAE {loaded.vae_name or '(checkpoint)'}"]
            first = build_workflow(resolved, checkpoint=loaded.checkpoint, vae=loaded.vae_name, batch=1,
                                   content_names=True, refiner_checkpoint=self.refiner_checkpoint)
            warnings = list(first.notes)
            for path, name in first.uploads.items():
                with open(path, "rb") as handle:
                    self.client.upload_image(handle.read(), name)
                events.append(f"uploaded {os.path.basename(path)} as {name}")
            sampler_name, scheduler, _ = comfy_sampler(resolved)
            config = {**resolved.scheduler.kwargs, "comfy": {"sampler_name": sampler_name, "scheduler": scheduler}}
            scheduler_record = {"name": resolved.scheduler.name,
                                "class": resolved.scheduler.cls or "EulerDiscreteScheduler", "config": config}
            images, calls, status, error = [], [], "ok", None
            for position, spec in enumerate(plan.images):
                if hooks.stop_requested():
                    status = "interrupted"
                    break
                try:
                    outcome = self._one_image(replace(resolved, styled_prompt=spec.prompt), loaded, spec, position,
                                              len(plan.images), len(images), hooks, started, events)
                except ComfyError as exc:
                    if not images:
                        raise
                    status, error = "failed", f"image {spec.index}: {exc}; the images before it were saved"
                    break
                if outcome is None:
                    status = "interrupted"
                    events.append(f"stopped during image {spec.index}; it was discarded")
                    break
                images.append((spec.index, spec.seed, outcome))
                calls.append([spec.index])
                hooks.images_done([images[-1]], scheduler_record)
            return RunOutput(images=images, calls=calls, status=status, generate_s=time.perf_counter() - started,
                             peak_memory_bytes=None, events=events, warnings=warnings, error=error, chunk_size=1,
                             scheduler=scheduler_record)

    def _one_image(self, resolved, loaded, spec, position, count, done, hooks, started, events):
        index = spec.index
        workflow = build_workflow(resolved, checkpoint=loaded.checkpoint, vae=loaded.vae_name, seed=spec.seed,
                                  batch=1, content_names=True, refiner_checkpoint=self.refiner_checkpoint)
        ws = self.client.connect()
        if ws is None and self.client.use_websocket:
            events.append(f"image {index}: websocket unavailable; following by polling /history")
        try:
            prompt_id = self.client.queue_prompt(workflow.graph)
            events.append(f"image {index}: ComfyUI prompt {prompt_id}")

            # Steps count on across the graph's samplers (base, refiner, hires pass) as the local engine counts them.
            counter = SamplerProgress(workflow.graph)
            reported = [0]

            def report(step: int, total: int) -> None:
                reported[0] = step
                hooks.progress({"step": step, "total": total, "chunk": position + 1, "chunks": count,
                                "images_done": done, "images_in_chunk": 1, "batch": count,
                                "elapsed": time.perf_counter() - started})

            def progress(value: int, maximum: int, node: str | None = None) -> None:
                report(*counter.update(value, maximum, node))

            total = counter.total or sampler_steps(resolved)
            if ws is None:
                report(0, total)  # polling sees no steps: the image's start and end are its progress
            try:
                status, entry = self.client.follow(prompt_id, ws, on_progress=progress, should_stop=hooks.stop_requested,
                                                   timeout_s=self.job_timeout_s, events=events)
            except KeyboardInterrupt:  # Ctrl-C, and SIGTERM during a job (sdxl_nb.jobs.signals)
                self.client._give_up(prompt_id)  # leave the server free for the next user
                raise
        finally:
            if ws is not None:
                ws.close()
        if status == "interrupted":
            return None
        image = self._result(entry, workflow.save_node, prompt_id, resolved.output_size)
        if reported[0] < total:
            report(total, total)
        return image

    def _result(self, entry: dict, save_node: str, prompt_id: str, size: tuple[int, int]):
        """The one image a prompt made, checked before anything is saved: exactly one output, bytes that decode
        (within the pixel budget), the requested size. Anything else is a ComfyError naming what came back."""
        outputs = (entry.get("outputs") or {}).get(save_node) or {}
        images = outputs.get("images") if isinstance(outputs, dict) else None
        if not images:
            raise ComfyError(f"ComfyUI finished prompt {prompt_id} without an image from node {save_node}")
        if not isinstance(images, list) or len(images) != 1:
            count = len(images) if isinstance(images, list) else "not a list of"
            raise ComfyError(f"ComfyUI returned {count} images for prompt {prompt_id} where 1 was asked; none of them "
                             "was saved")
        item = images[0]
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            raise ComfyError(f"ComfyUI named its output for prompt {prompt_id} without a file name: {str(item)[:80]}")
        image = decode_remote_image(self.client.view(item), f"ComfyUI output {item['filename']!r} of prompt {prompt_id}")
        if image.size != size:
            raise ComfyError(f"ComfyUI returned a {image.size[0]}x{image.size[1]} image for prompt {prompt_id} where "
                             f"{size[0]}x{size[1]} was asked; it was not saved")
        return image


def sampler_steps(r) -> int:
    """The sampler steps a request runs on the server (the workflow's KSampler or KSamplerAdvanced)."""
    return r.steps if r.mode == "txt2img" else strength_steps(r.steps, r.strength)


def decode_remote_image(data: bytes, label: str):
    """A server's image bytes as an RGB PIL image; ComfyError when they are not an image or exceed the pixel budget
    (what a server sends is not trusted any more than an init image is)."""
    from PIL import Image

    from sdxl_nb.request.resolve import decode_image

    try:
        decode_image(data, label)
    except InputError as exc:  # the server's answer, not the user's input: a run-time failure
        raise ComfyError(f"{exc}; it was not saved") from None
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def generate_remote(request=None, *, url: str | None = None, backend: ComfyBackend | None = None,
                    checkpoint: str | None = None, vae: str | None = None, chunk_size: int | None = None, **kwargs):
    """sdxl_nb.api.generate on a ComfyUI server.

    Takes generate's arguments (request or fields, out_dir, on_progress, should_stop, on_stage...)
    plus the server `url` (or SDXL_NB_COMFY_URL) and the server's `checkpoint` / `vae` file names.
    node_errors and other server failures are recorded (status failed) and raised as ComfyError.
    """
    from sdxl_nb.jobs.generate import generate

    if chunk_size not in (None, 1):
        raise InputError(f"chunk size {chunk_size}: the ComfyUI backend runs one image per prompt (chunk size 1) "
                         "so that image i keeps seed + i")
    backend = backend or ComfyBackend(url, checkpoint=checkpoint, vae=vae)
    return generate(request, engine=backend, chunk_size=1, **kwargs)
