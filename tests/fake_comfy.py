"""An in-process fake ComfyUI server: the documented endpoints, websocket messages and error shapes.

It validates graphs like ComfyUI (unknown nodes, missing inputs, values not in list -> 400 with
node_errors), runs one prompt at a time on a worker task (progress per KSampler step, images made
from the seed), keeps /history, serves /view, and honours /interrupt and queue deletion. Knobs
let tests turn the websocket off or drop it, hang a prompt, fail a node, or require basic auth, and
make it lie: images of another size, more images than asked, bytes that are not an image, a /view
that hangs, a connection closed without an answer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

# class_type -> required inputs (what /prompt validation checks).
NODES = {
    "CheckpointLoaderSimple": ["ckpt_name"], "VAELoader": ["vae_name"], "CLIPTextEncode": ["text", "clip"],
    "ConditioningZeroOut": ["conditioning"], "EmptyLatentImage": ["width", "height", "batch_size"],
    "LoadImage": ["image"], "LoadImageMask": ["image", "channel"],
    "ImageScale": ["image", "upscale_method", "width", "height", "crop"], "MaskToImage": ["mask"],
    "ImageToMask": ["image", "channel"], "VAEEncode": ["pixels", "vae"], "SetLatentNoiseMask": ["samples", "mask"],
    "InpaintModelConditioning": ["positive", "negative", "vae", "pixels", "mask", "noise_mask"],
    "RepeatLatentBatch": ["samples", "amount"],
    "ImageBlur": ["image", "blur_radius", "sigma"], "ThresholdMask": ["mask", "value"],
    "MaskComposite": ["destination", "source", "x", "y", "operation"],
    "VAEEncodeForInpaint": ["pixels", "vae", "mask", "grow_mask_by"], "RepeatImageBatch": ["image", "amount"],
    "ImageCompositeMasked": ["destination", "source", "x", "y", "resize_source"],
    "LoraLoader": ["model", "clip", "lora_name", "strength_model", "strength_clip"],
    "KSampler": ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "model", "positive", "negative",
                 "latent_image"],
    "KSamplerAdvanced": ["add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
                         "latent_image", "start_at_step", "end_at_step", "return_with_leftover_noise", "model"],
    "VAEDecode": ["samples", "vae"], "SaveImage": ["images", "filename_prefix"],
    "CLIPTextEncodeSDXLRefiner": ["ascore", "width", "height", "text", "clip"],
    "LatentUpscaleBy": ["samples", "upscale_method", "scale_by"], "UpscaleModelLoader": ["model_name"],
    "ImageUpscaleWithModel": ["upscale_model", "image"],
    "LatentUpscale": ["samples", "upscale_method", "width", "height", "crop"],
    "LatentCrop": ["samples", "width", "height", "x", "y"], "ImageCrop": ["image", "width", "height", "x", "y"],
    "ControlNetLoader": ["control_net_name"], "Canny": ["image", "low_threshold", "high_threshold"],
    "ControlNetApplyAdvanced": ["positive", "negative", "control_net", "image", "strength", "start_percent",
                                "end_percent"],
}
LATENT_UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform"]


def image_for_seed(seed: int, width: int, height: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


class FakeComfy:
    def __init__(self, *, checkpoints=("sd_xl_base_1.0.safetensors",), vaes=("sdxl-vae-fp16-fix.safetensors",),
                 loras=(), upscale_models=(), controlnets=("tiny-sdxl-controlnet.safetensors",), embeddings=None,
                 version="0.3.40"):
        self.checkpoints, self.vaes, self.loras = list(checkpoints), list(vaes), list(loras)
        # GET /embeddings: these names (without extension, as server.py get_embeddings lists them); None: 404
        self.embeddings = None if embeddings is None else list(embeddings)
        # "0.3.64" answers /object_info's combo inputs in the newer ["COMBO", {"options": [...]}] form (comfy_api's
        # add_to_dict_v1), older versions in the [[...], {...}] form; /system_stats reports it as comfyui_version.
        self.version = version
        self.upscale_models = list(upscale_models)
        self.controlnets = list(controlnets)
        self.step_delay_s = 0.005
        self.websocket = "on"  # "on", "off" (handshake refused), "drop" (closed after the first progress)
        self.hang = False  # accept prompts and never run them
        self.fail_in_node: str | None = None  # class_type whose execution raises
        self.auth: tuple[str, str] | None = None
        # Lies: what a broken or hostile server answers.
        self.image_size: tuple[int, int] | None = None  # every output image has this size, whatever was asked
        self.extra_images = 0  # SaveImage outputs this many images more than the batch
        self.view_body: bytes | None = None  # /view answers these bytes instead of the PNG
        self.view_delay_s = 0.0  # /view waits this long before answering (a hang)
        self.close_on: set[str] = set()  # paths ("/view", "/prompt"...) whose requests are cut without an answer
        self.sampler_steps: dict[str, int] = {}  # prompt id -> sampler steps it ran
        self.requests: list[tuple[str, str]] = []
        self.prompts: dict[str, dict] = {}
        self.uploads: dict[str, bytes] = {}
        self.outputs: dict[str, bytes] = {}
        self.history: dict[str, dict] = {}
        self.interrupts: list[dict | None] = []
        self.deleted: list[str] = []
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self._pending: list[tuple[int, str]] = []
        self._running: str | None = None
        self._interrupt = False
        self._counter = 0

    # ---- the app ----
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/prompt", self.post_prompt)
        app.router.add_get("/history/{prompt_id}", self.get_history)
        app.router.add_get("/view", self.get_view)
        app.router.add_post("/upload/image", self.post_upload)
        app.router.add_post("/interrupt", self.post_interrupt)
        app.router.add_get("/queue", self.get_queue)
        app.router.add_post("/queue", self.post_queue)
        app.router.add_get("/object_info/{node}", self.get_object_info)
        app.router.add_get("/system_stats", self.get_system_stats)
        app.router.add_get("/embeddings", self.get_embeddings)
        app.router.add_get("/ws", self.websocket_handler)
        app.on_startup.append(self._start_worker)
        app.on_cleanup.append(self._stop_worker)
        return app

    @web.middleware
    async def _middleware(self, request, handler):
        self.requests.append((request.method, request.path))
        if request.path in self.close_on:
            request.transport.close()  # the client sees the connection end without a response
            return web.Response(status=500)
        if self.auth:
            expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(status=401, text="401: Unauthorized")
        return await handler(request)

    async def _start_worker(self, app):
        self._wake = asyncio.Event()
        self._worker = asyncio.create_task(self._work())

    async def _stop_worker(self, app):
        self._worker.cancel()
        for ws in list(self.sockets.values()):
            await ws.close()

    # ---- endpoints ----
    async def post_prompt(self, request):
        body = await request.json()
        graph = body.get("prompt")
        problem = self._validate(graph)
        if problem:
            return web.json_response(problem, status=400)
        prompt_id = str(uuid.uuid4())
        self._counter += 1
        self.prompts[prompt_id] = {"graph": graph, "client_id": body.get("client_id")}
        self._pending.append((self._counter, prompt_id))
        self._wake.set()
        return web.json_response({"prompt_id": prompt_id, "number": self._counter, "node_errors": {}})

    def _validate(self, graph) -> dict | None:
        if not isinstance(graph, dict) or not graph:
            return {"error": {"type": "invalid_prompt", "message": "Cannot execute because the prompt is empty",
                              "details": "", "extra_info": {}}, "node_errors": {}}
        for node_id, node in graph.items():
            if node.get("class_type") not in NODES:
                return {"error": {"type": "invalid_prompt", "message": f"Cannot execute because node "
                                  f"{node.get('class_type')} does not exist.", "details": f"Node ID '#{node_id}'",
                                  "extra_info": {}}, "node_errors": {}}
        node_errors = {}
        for node_id, node in graph.items():
            errors = []
            inputs = node.get("inputs", {})
            for name in NODES[node["class_type"]]:
                if name not in inputs:
                    errors.append({"type": "required_input_missing", "message": "Required input is missing",
                                   "details": name, "extra_info": {"input_name": name}})
                elif isinstance(inputs[name], list) and (len(inputs[name]) != 2 or inputs[name][0] not in graph):
                    errors.append({"type": "bad_linked_input", "message": "Bad linked input", "details": name,
                                   "extra_info": {"input_name": name}})
            for name, allowed in (("ckpt_name", self.checkpoints), ("vae_name", self.vaes),
                                  ("control_net_name", self.controlnets),
                                  ("sampler_name", SAMPLERS), ("scheduler", SCHEDULERS),
                                  ("add_noise", ["enable", "disable"]),
                                  ("model_name", self.upscale_models),
                                  ("upscale_method", LATENT_UPSCALE_METHODS + ["lanczos"]),
                                  ("return_with_leftover_noise", ["enable", "disable"]),
                                  ("image", list(self.uploads) if node["class_type"].startswith("LoadImage") else None)):
                if allowed is not None and name in inputs and inputs[name] not in allowed:
                    errors.append({"type": "value_not_in_list", "message": "Value not in list",
                                   "details": f"{name}: '{inputs[name]}' not in {allowed}",
                                   "extra_info": {"input_name": name}})
            if errors:
                node_errors[node_id] = {"errors": errors, "dependent_outputs": [], "class_type": node["class_type"]}
        if node_errors:
            return {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                              "details": "", "extra_info": {}}, "node_errors": node_errors}
        return None

    async def get_history(self, request):
        prompt_id = request.match_info["prompt_id"]
        entry = self.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry else {})

    async def get_view(self, request):
        name = request.query.get("filename", "")
        if request.query.get("type", "output") != "output" or name not in self.outputs:
            return web.Response(status=404)
        if self.view_delay_s:
            await asyncio.sleep(self.view_delay_s)
        body = self.outputs[name] if self.view_body is None else self.view_body
        return web.Response(body=body, content_type="image/png")

    async def post_upload(self, request):
        form = await request.post()
        field = form.get("image")
        if field is None:
            return web.Response(status=400)
        self.uploads[field.filename] = field.file.read()
        return web.json_response({"name": field.filename, "subfolder": "", "type": "input"})

    async def post_interrupt(self, request):
        body = await request.json() if request.can_read_body else None
        self.interrupts.append(body)
        wanted = (body or {}).get("prompt_id")
        if self._running and wanted in (None, self._running):
            self._interrupt = True
        return web.Response(status=200)

    async def get_queue(self, request):
        def item(number, prompt_id):
            return [number, prompt_id, self.prompts[prompt_id]["graph"], {}, []]

        running = [item(0, self._running)] if self._running else []
        return web.json_response({"queue_running": running, "queue_pending": [item(n, p) for n, p in self._pending]})

    async def post_queue(self, request):
        body = await request.json()
        for prompt_id in body.get("delete", []):
            self.deleted.append(prompt_id)
            self._pending = [(n, p) for n, p in self._pending if p != prompt_id]
        return web.Response(status=200)

    def combo(self, names: list[str]) -> list:
        """A combo input as this version's /object_info lists it."""
        if tuple(int(part) for part in self.version.split(".")) >= (0, 3, 64):
            return ["COMBO", {"multiselect": False, "options": list(names)}]
        return [list(names), {}]

    async def get_embeddings(self, request):
        if self.embeddings is None:
            return web.Response(status=404)
        return web.json_response(self.embeddings)

    async def get_object_info(self, request):
        node = request.match_info["node"]
        combo = self.combo
        lists = {"CheckpointLoaderSimple": {"ckpt_name": combo(self.checkpoints)},
                 "VAELoader": {"vae_name": combo(self.vaes)},
                 "ControlNetLoader": {"control_net_name": combo(self.controlnets)},
                 "LoraLoader": {"lora_name": combo(self.loras), **{name: ["*"] for name in NODES["LoraLoader"][:2]},
                                "strength_model": ["FLOAT"], "strength_clip": ["FLOAT"]},
                 "UpscaleModelLoader": {"model_name": combo(self.upscale_models)}}
        if node not in NODES:
            return web.json_response({})
        required = lists.get(node) or {name: ["*"] for name in NODES[node]}
        return web.json_response({node: {"input": {"required": required}, "name": node, "output_node": False}})

    async def get_system_stats(self, request):
        return web.json_response({
            "system": {"os": "posix", "python_version": "3.12.3", "embedded_python": False,
                       "comfyui_version": self.version, "pytorch_version": "2.7.1+cu128", "ram_total": 1 << 36},
            "devices": [{"name": "cuda:0 NVIDIA A10 : cudaMallocAsync", "type": "cuda", "index": 0,
                         "vram_total": 24 << 30, "vram_free": 23 << 30}]})

    async def websocket_handler(self, request):
        if self.websocket == "off":
            return web.Response(status=404, text="websocket disabled")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client_id = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[client_id] = ws
        await ws.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                       "sid": client_id}})
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
        self.sockets.pop(client_id, None)
        return ws

    # ---- the worker: one prompt at a time, like ComfyUI's ----
    async def _send(self, client_id, kind, data):
        ws = self.sockets.get(client_id)
        if ws is None or ws.closed:
            return
        try:
            await ws.send_json({"type": kind, "data": data})
            if kind == "progress" and self.websocket == "drop":
                await ws.close()
        except ConnectionError:
            pass

    async def _work(self):
        while True:
            if not self._pending or self.hang:
                self._wake.clear()
                await self._wake.wait()
                continue
            _number, prompt_id = self._pending.pop(0)
            self._running, self._interrupt = prompt_id, False
            try:
                await self._execute(prompt_id)
            finally:
                self._running = None

    async def _execute(self, prompt_id):
        prompt = self.prompts[prompt_id]
        graph, client = prompt["graph"], prompt["client_id"]
        messages = []

        async def event(kind, data, keep=True):
            data = {**data, "prompt_id": prompt_id}
            if keep:
                messages.append([kind, {**data, "timestamp": int(time.time() * 1000)}])
            await self._send(client, kind, data)

        await event("execution_start", {})
        await event("execution_cached", {"nodes": []})
        for node_id, node in graph.items():
            await event("executing", {"node": node_id, "display_node": node_id}, keep=False)
            if node["class_type"] == self.fail_in_node:
                await event("execution_error", {"node_id": node_id, "node_type": node["class_type"], "executed": [],
                                                "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
                                                "exception_type": "torch.OutOfMemoryError", "traceback": []})
                self.history[prompt_id] = {"prompt": [0, prompt_id, graph, {}, []], "outputs": {},
                                           "status": {"status_str": "error", "completed": False, "messages": messages}}
                return
            if node["class_type"] in ("KSampler", "KSamplerAdvanced"):
                steps = _sampler_steps(node)
                self.sampler_steps[prompt_id] = steps
                for step in range(1, steps + 1):
                    await asyncio.sleep(self.step_delay_s)
                    if self._interrupt:
                        await event("execution_interrupted", {"node_id": node_id, "node_type": node["class_type"],
                                                              "executed": []})
                        self.history[prompt_id] = {"prompt": [0, prompt_id, graph, {}, []], "outputs": {},
                                                   "status": {"status_str": "error", "completed": False,
                                                              "messages": messages}}
                        return
                    await event("progress", {"value": step, "max": steps, "node": node_id}, keep=False)
        outputs = {}
        for node_id, node in graph.items():
            if node["class_type"] == "SaveImage":
                outputs[node_id] = {"images": self._save_images(graph, node)}
                await event("executed", {"node": node_id, "display_node": node_id, "output": outputs[node_id]},
                            keep=False)
        # As ComfyUI does: success is announced before the history entry exists, then "executing: null".
        await event("execution_success", {})
        await asyncio.sleep(self.step_delay_s)
        self.history[prompt_id] = {"prompt": [0, prompt_id, graph, {}, []], "outputs": outputs,
                                   "status": {"status_str": "success", "completed": True, "messages": messages}}
        await self._send(client, "executing", {"node": None, "prompt_id": prompt_id})

    def _save_images(self, graph, save_node):
        sampler = next(n for n in graph.values() if n["class_type"] in ("KSampler", "KSamplerAdvanced"))
        seed = sampler["inputs"].get("seed", sampler["inputs"].get("noise_seed"))
        width, height, batch = 64, 64, 1
        control = {node_id for node_id, node in graph.items()  # a control image and what is made of it
                   if node.get("_meta", {}).get("title", "").startswith("Control image")}
        for node_id, node in graph.items():
            if node_id in control or (isinstance(node["inputs"].get("image"), list)
                                      and node["inputs"]["image"][0] in control):
                control.add(node_id)
                continue
            if node["class_type"] == "EmptyLatentImage":
                width, height, batch = node["inputs"]["width"], node["inputs"]["height"], node["inputs"]["batch_size"]
            elif node["class_type"] == "LoadImage":
                with Image.open(io.BytesIO(self.uploads[node["inputs"]["image"]])) as init:
                    width, height = init.size
            elif node["class_type"] in ("ImageScale", "LatentUpscale", "LatentCrop", "ImageCrop"):
                width, height = node["inputs"]["width"], node["inputs"]["height"]
            elif node["class_type"] == "LatentUpscaleBy":  # as ComfyUI: round(latent side x scale_by), in latents
                scale = node["inputs"]["scale_by"]
                width, height = round(width // 8 * scale) * 8, round(height // 8 * scale) * 8
        width, height = self.image_size or (width, height)
        # A ControlNet at a weight changes the picture (as on a real server): its weight moves the seed.
        seed += sum(int(node["inputs"]["strength"] * 1000) for node in graph.values()
                    if node["class_type"] == "ControlNetApplyAdvanced")
        images = []
        for index in range(batch + self.extra_images):
            self._counter += 1
            name = f"{save_node['inputs']['filename_prefix']}_{self._counter:05d}_.png"
            buffer = io.BytesIO()
            image_for_seed(seed + index, width, height).save(buffer, format="PNG")
            self.outputs[name] = buffer.getvalue()
            images.append({"filename": name, "subfolder": "", "type": "output"})
        return images


def _sampler_steps(node) -> int:
    """The steps a sampler node runs, as ComfyUI counts them: KSampler all its steps (a denoise below 1 stretches
    the schedule instead); KSamplerAdvanced from start_at_step to end_at_step of its `steps`-step schedule."""
    inputs = node["inputs"]
    if node["class_type"] == "KSampler":
        return inputs["steps"]
    return max(0, min(inputs["end_at_step"], inputs["steps"]) - inputs["start_at_step"])
