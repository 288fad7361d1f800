"""ComfyUI API-format workflows from resolved requests: the standard SDXL graph, node by node; no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sdxl_nb.backends.comfy.inpaint_nodes import check_inpaint, inpaint_latent, inpainting_model_overlay, paste_back
from sdxl_nb.config.limits import strength_steps
from sdxl_nb.request.prompt_syntax import is_plain, without_tags
from sdxl_nb.request.resolve import InputImage, ResolvedRequest

# What ComfyUI runs for "Default" (the model's own scheduler): SDXL checkpoints ship Euler.
DEFAULT_SAMPLER = ("euler", "normal")


@dataclass
class Workflow:
    graph: dict  # {node id: {"class_type", "inputs", "_meta"}}; links are [node id, output index]
    save_node: str  # the SaveImage node whose outputs are the images
    uploads: dict[str, str] = field(default_factory=dict)  # local path -> name the graph loads it by
    notes: list[str] = field(default_factory=list)  # what differs from a local run, said once

    def export_text(self) -> str:
        """The graph as the JSON a file or stdout gets, secrets masked (a token typed into a prompt reaches no
        exported file; the graph a backend sends to its own server keeps the prompt as typed)."""
        import json

        from sdxl_nb.record.secrets import mask_data

        return json.dumps(mask_data(self.graph), indent=2, ensure_ascii=False) + "\n"


def default_checkpoint(model_id: str) -> str:
    """The checkpoint file name assumed on the server: a local checkpoint's own file name (with its sub-folder
    inside the checkpoints folder, as CheckpointLoaderSimple lists it), else the repo's last part + .safetensors."""
    from sdxl_nb.config.checkpoints import checkpoint_file_name

    return checkpoint_file_name(model_id) or model_id.rsplit("/", 1)[-1] + ".safetensors"


def comfy_sampler(r: ResolvedRequest) -> tuple[str, str, str | None]:
    """(sampler_name, scheduler, note) for a request's scheduler preset (presets.json's `comfy` pair)."""
    if r.scheduler.comfy:
        return r.scheduler.comfy[0], r.scheduler.comfy[1], None
    schedule = "" if r.schedule_type == "Automatic" else f" + {r.schedule_type}"
    note = (f"scheduler {r.scheduler.name}{schedule} has no ComfyUI equivalent; ComfyUI runs "
            f"{DEFAULT_SAMPLER[0]}/{DEFAULT_SAMPLER[1]} (the SDXL default)")
    return DEFAULT_SAMPLER[0], DEFAULT_SAMPLER[1], note


class _Graph:
    def __init__(self):
        self.nodes: dict[str, dict] = {}

    def add(self, class_type: str, title: str | None = None, **inputs) -> list:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs, "_meta": {"title": title or class_type}}
        return [node_id, 0]


def _output(link: list, index: int) -> list:
    return [link[0], index]


IP_ADAPTER_REFUSAL = ("a ComfyUI workflow cannot carry an IP-Adapter: stock ComfyUI has no IP-Adapter node (it needs a "
                      "custom node pack such as ComfyUI_IPAdapter_plus); drop --ip-adapter, or run the job on the local "
                      "engine")


def build_workflow(r: ResolvedRequest, *, checkpoint: str | None = None, vae: str | None = None,
                   seed: int | None = None, batch: int | None = None, filename_prefix: str = "sdxl_nb",
                   content_names: bool = False, refiner_checkpoint: str | None = None) -> Workflow:
    """The SDXL graph for a request: checkpoint, optional VAE, prompts, latent, sampler, decode, save.

    `vae`: a VAE file on the server; None uses the model preset's dedicated VAE (as
    <repo name>.safetensors), "" the checkpoint's own. img2img loads the init image (LoadImage +
    VAEEncode) and samples with KSamplerAdvanced over the last int(steps x strength) steps of a
    `steps`-step schedule, as diffusers and A1111 do; inpaint adds the mask (SetLatentNoiseMask). Input images are
    loaded by their file name, or with `content_names` by a name made from their hash (what the
    remote backend uploads: the same file is never uploaded twice nor mixed up with another). With a refiner
    (switch < 1) the base's KSamplerAdvanced stops at the switch step with its leftover noise and the refiner's
    (its own checkpoint, `refiner_checkpoint`, and CLIPTextEncodeSDXLRefiner prompts) runs the rest; the switch step
    is the local run's (refiner_split), in the hires pass when there is one.
    """
    if getattr(r, "ip_adapter", None) is not None:
        from sdxl_nb.errors import InputError

        raise InputError(IP_ADAPTER_REFUSAL)
    check_inpaint(r)  # before any node: settings stock nodes cannot carry are one line
    seed = r.seed if seed is None else seed
    batch = r.batch if batch is None else batch
    notes: list[str] = []
    uploads: dict[str, str] = {}
    g = _Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=checkpoint or default_checkpoint(r.model.id))
    model, clip, vae_link = _output(ckpt, 0), _output(ckpt, 1), _output(ckpt, 2)
    for lora in r.loras:  # chained, each at its weight on the UNet and the text encoders (as A1111 applies it)
        node = g.add("LoraLoader", f"LoRA {lora.name}", model=model, clip=clip, lora_name=lora_file_name(lora),
                     strength_model=lora.weight, strength_clip=lora.weight)
        model, clip = _output(node, 0), _output(node, 1)
    vae_name = (default_checkpoint(r.model.vae) if r.model.vae else "") if vae is None else vae
    if vae_name:
        vae_link = g.add("VAELoader", vae_name=vae_name)
    names = [embedding.name for embedding in r.embeddings]
    positive = g.add("CLIPTextEncode", "Positive prompt", text=comfy_text(r.styled_prompt, names), clip=clip)
    negative = g.add("CLIPTextEncode", "Negative prompt", text=comfy_text(r.effective_negative_prompt, names),
                     clip=clip)
    if not all(is_plain(text) for text in (r.styled_prompt, r.effective_negative_prompt)):
        notes.append("ComfyUI reads (word:1.2) weights itself, without A1111's mean restoration, and BREAK as a "
                      "word: weighted prompts come out differently there")
    if not r.effective_negative_prompt:
        # SDXL (as diffusers runs it) uses zeroed conditioning for an empty negative, not an encoded "".
        negative = g.add("ConditioningZeroOut", "Empty negative", conditioning=negative)
    if r.controlnets:
        from sdxl_nb.backends.comfy.control_nodes import apply_controlnets

        positive, negative = apply_controlnets(g, r, positive, negative, vae_link,
                                               lambda image: _name(image, content_names, uploads), notes)

    if r.mode == "txt2img":
        latent = g.add("EmptyLatentImage", width=r.width, height=r.height, batch_size=batch)
    else:
        pixels = _load_image(g, _name(r.init_image, content_names, uploads), r.init_image.size,
                             (r.width, r.height))
        if r.mode != "inpaint":
            latent = g.add("VAEEncode", pixels=pixels, vae=vae_link)
        else:
            mask = _load_mask(g, _name(r.mask_image, content_names, uploads), r.mask_image.size,
                              (r.width, r.height))
            if getattr(r.model, "inpainting", False):  # a 9-channel UNet: InpaintModelConditioning
                positive, negative, latent = _inpaint_model_conditioning(g, positive, negative, vae_link, pixels,
                                                                         mask)
                overlay = inpainting_model_overlay(g, r, mask)
            else:  # A1111's mask blur, masked content and paste-back (inpaint_nodes.py)
                latent, overlay = inpaint_latent(g, r, pixels, vae_link, mask, notes)
        if batch > 1:
            latent = g.add("RepeatLatentBatch", samples=latent, amount=batch)
    sampler_name, scheduler, note = comfy_sampler(r)
    if note:
        notes.append(note)
    if batch > 1:
        notes.append(f"ComfyUI draws one noise tensor for the whole batch from seed {seed}: its image i is not the "
                     f"image of seed {seed}+i (the remote backend runs one prompt per image to keep seed + i)")
    shared = dict(cfg=r.cfg, sampler_name=sampler_name, scheduler=scheduler, model=model, positive=positive,
                  negative=negative, latent_image=latent)
    split = refiner_split(r, notes) if r.refiner is not None and r.refiner_switch < 1 else None
    refine = (lambda given, size: _refined(g, r, seed, split, given, refiner_checkpoint, size)) if split else None
    if split and split["pass"] == "first":
        sampled = refine(shared, (r.width, r.height))
    elif r.mode == "txt2img":
        sampled = g.add("KSampler", seed=seed, steps=r.steps, denoise=1.0, **shared)
    else:
        # KSampler's denoise=s would run all `steps` steps over a schedule stretched to steps / s: 1/s times the
        # work, and other noise levels than the PNG's Steps and Denoising strength say. diffusers (get_timesteps)
        # and A1111 run the tail of the `steps`-step schedule instead; KSamplerAdvanced runs exactly that tail.
        start = r.steps - strength_steps(r.steps, r.strength)
        sampled = g.add("KSamplerAdvanced", add_noise="enable", noise_seed=seed, steps=r.steps, start_at_step=start,
                        end_at_step=r.steps, return_with_leftover_noise="disable", **shared)
    if r.hires:
        sampled = _hires_pass(g, r.hires, sampled, vae_link, seed, shared, refine)
        if r.hires.upscaler.kind == "model":
            notes.append(f"the workflow loads upscaler {upscaler_file_name(r.hires)}: it must be in the server's "
                         "models/upscale_models folder")
    decoded = g.add("VAEDecode", samples=sampled, vae=vae_link)
    if r.mode == "inpaint":
        decoded = paste_back(g, decoded, pixels, overlay, batch)
    save = g.add("SaveImage", images=decoded, filename_prefix=filename_prefix)
    return Workflow(graph=g.nodes, save_node=save[0], uploads=uploads, notes=notes)


def _inpaint_model_conditioning(g: _Graph, positive: list, negative: list, vae: list, pixels: list, mask: list):
    """(positive, negative, latent) for a 9-channel inpainting checkpoint: ComfyUI's InpaintModelConditioning (nodes.py)
    puts the mask and the masked image's latents on both conditionings and encodes the image. Its noise mask stays off:
    diffusers' inpaint pipeline blends the known latents back only for 4-channel UNets. txt2img and img2img need no
    node: with no mask ComfyUI's BaseModel.concat_cond gives a full mask and a blank image, as the local run does."""
    node = g.add("InpaintModelConditioning", "Inpainting model conditioning", positive=positive, negative=negative,
                 vae=vae, pixels=pixels, mask=mask, noise_mask=False)
    return _output(node, 0), _output(node, 1), _output(node, 2)



def refiner_split(r: ResolvedRequest, notes: list[str] | None = None) -> dict:
    """Where the refiner takes over, from the very function the local run cuts its schedule by
    (refiner_split.refiner_plan on the model's scheduler config); a switch that leaves either model no step is
    refused in the same line as locally."""
    from sdxl_nb.backends.local.refiner_split import refiner_plan, request_scheduler, split_problem
    from sdxl_nb.errors import InputError

    scheduler = request_scheduler(r, notes)
    problem = split_problem(scheduler, r)
    if problem:
        raise InputError(problem)
    return refiner_plan(scheduler, r)


def _refined(g: _Graph, r: ResolvedRequest, seed: int, split: dict, shared: dict, refiner_checkpoint: str | None,
             size: tuple[int, int]) -> list:
    """Base KSamplerAdvanced to the switch step (leftover noise on), then the refiner's from there (no new noise), on
    the schedule of the pass the refiner runs in (the job's, or the hires pass's)."""
    from sdxl_nb.config.refiners import AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE

    steps, switch = split["schedule_steps"], split["switch_step"]
    base = g.add("KSamplerAdvanced", "Base sampler", add_noise="enable", noise_seed=seed, steps=steps,
                 start_at_step=split["start_step"], end_at_step=switch, return_with_leftover_noise="enable", **shared)
    ckpt = g.add("CheckpointLoaderSimple", "Refiner checkpoint",
                 ckpt_name=refiner_checkpoint or default_checkpoint(r.refiner.id))
    clip = _output(ckpt, 1)
    size = dict(width=size[0], height=size[1])
    positive = g.add("CLIPTextEncodeSDXLRefiner", "Refiner positive prompt", ascore=AESTHETIC_SCORE, **size,
                     text=without_tags(r.styled_prompt), clip=clip)
    negative = g.add("CLIPTextEncodeSDXLRefiner", "Refiner negative prompt", ascore=NEGATIVE_AESTHETIC_SCORE,
                     **size, text=without_tags(r.effective_negative_prompt), clip=clip)
    refined = dict(shared, model=_output(ckpt, 0), positive=positive, negative=negative, latent_image=base)
    return g.add("KSamplerAdvanced", "Refiner sampler", add_noise="disable", noise_seed=seed, steps=steps,
                 start_at_step=switch, end_at_step=10000, return_with_leftover_noise="disable", **refined)


def _hires_pass(g: _Graph, fix, sampled: list, vae_link: list, seed: int, shared: dict, refine=None) -> list:
    """The hires fix: LatentUpscaleBy, or decode + (UpscaleModelLoader + ImageUpscaleWithModel) + ImageScale to
    the exact size + VAEEncode; then a KSampler of `steps` steps at `denoise` (ComfyUI runs `steps` steps, as A1111).
    With a refiner (`refine`) the pass is the base's to the switch and the refiner's after it, as A1111 runs it
    (apply_refiner with its default hires_fix_refiner_pass "second pass")."""
    width, height = fix.upscaled_size
    crop = fix.crop  # a "Hires resize" to another aspect ratio: upscale to cover, keep the centre (as locally)
    if fix.upscaler.kind == "latent":
        if fix.resize:  # a target size, not a factor: LatentUpscale to it (ComfyUI's nodes_upscale)
            latent = g.add("LatentUpscale", f"Hires resize ({fix.upscaler.name})", samples=sampled,
                           upscale_method=fix.upscaler.method, width=width, height=height, crop="disabled")
        else:
            latent = g.add("LatentUpscaleBy", f"Hires upscale ({fix.upscaler.name})", samples=sampled,
                           upscale_method=fix.upscaler.method, scale_by=fix.scale)
        if crop:
            latent = g.add("LatentCrop", "Hires crop", samples=latent, width=fix.width, height=fix.height,
                           x=crop[0], y=crop[1])
    else:
        pixels = g.add("VAEDecode", "First pass", samples=sampled, vae=vae_link)
        if fix.upscaler.kind == "model":
            loader = g.add("UpscaleModelLoader", f"Upscaler {fix.upscaler.name}", model_name=upscaler_file_name(fix))
            pixels = g.add("ImageUpscaleWithModel", upscale_model=loader, image=pixels)
        pixels = g.add("ImageScale", "Hires size", image=pixels, upscale_method="lanczos", width=width,
                       height=height, crop="disabled")
        if crop:
            pixels = g.add("ImageCrop", "Hires crop", image=pixels, width=fix.width, height=fix.height,
                           x=crop[0], y=crop[1])
        latent = g.add("VAEEncode", pixels=pixels, vae=vae_link)
    if refine is not None:
        return refine(dict(shared, latent_image=latent), (fix.width, fix.height))
    return g.add("KSampler", "Hires pass", **dict(shared, latent_image=latent), seed=seed, steps=fix.steps,
                 denoise=fix.denoise)


def upscaler_file_name(fix) -> str:
    """The name UpscaleModelLoader loads it by: its file name in the server's models/upscale_models folder."""
    return Path(fix.upscaler.path).name


def lora_file_name(lora) -> str:
    """The name LoraLoader loads it by: its file name in the server's models/loras folder."""
    return Path(lora.path).name


def comfy_text(text: str, embeddings: list[str]) -> str:
    """A prompt as ComfyUI reads it: <lora:...> tags out (LoraLoader nodes apply them), embeddings as
    `embedding:NAME`."""
    text = without_tags(text)
    if embeddings:
        pattern = re.compile(r"(?<![\w:])(" + "|".join(re.escape(n) for n in sorted(embeddings, key=len, reverse=True))
                             + r")(?![\w])")
        text = pattern.sub(lambda match: f"embedding:{match.group(1)}", text)
    return text


def _name(image: InputImage, content_names: bool, uploads: dict[str, str]) -> str:
    path = Path(image.path)
    name = f"sdxl_nb_{image.sha256[:16]}{path.suffix.lower()}" if content_names else path.name
    uploads[image.path] = name
    return name


def _load_image(g: _Graph, name: str, size: tuple[int, int], target: tuple[int, int]) -> list:
    pixels = g.add("LoadImage", "Init image", image=name)
    if tuple(size) != tuple(target):  # the local run resizes with Lanczos too
        pixels = g.add("ImageScale", image=pixels, upscale_method="lanczos", width=target[0], height=target[1],
                       crop="disabled")
    return pixels


def _load_mask(g: _Graph, name: str, size: tuple[int, int], target: tuple[int, int]) -> list:
    # White = repaint, as locally: the red channel of a grey or RGB mask is its brightness.
    mask = g.add("LoadImageMask", "Mask", image=name, channel="red")
    if tuple(size) != tuple(target):
        image = g.add("MaskToImage", mask=mask)
        image = g.add("ImageScale", image=image, upscale_method="nearest-exact", width=target[0], height=target[1],
                      crop="disabled")
        mask = g.add("ImageToMask", image=image, channel="red")
    return mask
