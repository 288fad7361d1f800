"""The fixed parts of a job's script: its header and imports, model loading, and the run loop over the recorded calls."""

import json

# What the fixed parts use (the embedded engine definitions bring their own imports).
IMPORTS = ("import hashlib", "import json", "import sys", "from pathlib import Path", "from types import SimpleNamespace",
           "import diffusers", "import torch", "import transformers",
           "from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel",
           "from safetensors.torch import load as load_safetensors",
           "from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer")
STANDARD = ("dataclasses", "hashlib", "io", "json", "math", "pathlib", "re", "sys", "types", "collections", "typing")


def import_block(statements) -> str:
    """One sorted block: standard library, then the rest; `from m import a` and `from m import b` as one line."""
    plain, names = set(), {}
    for statement in statements:
        if statement.startswith("from "):
            module, _, imported = statement[5:].partition(" import ")
            names.setdefault(module, set()).update(part.strip() for part in imported.split(","))
        else:
            plain.add(statement)
    lines = [(statement.split()[1], statement) for statement in plain]
    lines += [(module, f"from {module} import {', '.join(sorted(imported))}") for module, imported in names.items()]
    groups = ([], [])
    for module, line in sorted(lines, key=lambda item: (item[1].startswith("from"), item[0])):
        groups[module.split(".")[0] not in STANDARD].append(line)
    return "\n\n".join("\n".join(group) for group in groups if group)


HEADER = '''"""Job {job_id} ({mode}, model {model}) re-created without sdxl_nb, from its jobs.log record.

Written by sdxl_nb; it does not import it. The definitions below the imports are the sdxl_nb engine's own
source (call arguments, A1111 prompt weighting, the decode guard...), so this script runs what the job ran.
On the machine that made the job (the same model files, library versions and CPU threads) it saves the
recorded images bit for bit. Run: python this_file.py [OUTPUT_FOLDER]
"""

from __future__ import annotations

{imports}'''


def header(job_id, mode, model, imports: str) -> str:
    """The script's docstring and imports. The recorded names are escaped (quotes, backslashes, line breaks): a
    received record's triple quote can never end the docstring and put code in the script."""
    def shown(value) -> str:
        return json.dumps(str(value), ensure_ascii=False)[1:-1]

    return HEADER.format(job_id=shown(job_id), mode=shown(mode), model=shown(model), imports=imports)


QUIET = '''

transformers.utils.logging.disable_progress_bar()
diffusers.utils.logging.disable_progress_bar()'''

RUN = '''

def load_model():
    """The model's components in the recorded dtype, as one SDXL pipeline (no watermark)."""
    dtype = getattr(torch, DTYPE)
    if CHECKPOINT:  # one .safetensors file, read as the engine reads it
        pipe = checkpoint_pipeline(CHECKPOINT, Path(MODEL_FOLDER), dtype)
        pipe.to(DEVICE)
        return pipe
    folder = Path(MODEL_FOLDER)
    common = dict(torch_dtype=dtype, local_files_only=True)

    def weights(cls, name):
        return cls.from_pretrained(folder / name, variant=_variant(folder / name, dtype), **common)

    vae = AutoencoderKL.from_pretrained(VAE_FOLDER, **common) if VAE_FOLDER else weights(AutoencoderKL, "vae")
    scheduler_class = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))["scheduler"][1]
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=weights(CLIPTextModel, "text_encoder"),
        text_encoder_2=weights(CLIPTextModelWithProjection, "text_encoder_2"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True),
        unet=weights(UNet2DConditionModel, "unet"),
        scheduler=getattr(diffusers, scheduler_class).from_pretrained(folder / "scheduler", local_files_only=True),
        add_watermarker=False)
    pipe.to(DEVICE)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_refiner(base):
    """The refiner beside the base: the modules the engine shared with the base are the base's own objects."""
    dtype = getattr(torch, DTYPE)
    folder, shared = Path(REFINER["folder"]), REFINER["shared"]
    common = dict(torch_dtype=dtype, local_files_only=True)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    modules = {}
    for name, cls in (("text_encoder_2", CLIPTextModelWithProjection), ("vae", AutoencoderKL)):
        modules[name] = getattr(base, name) if name in shared else \
            cls.from_pretrained(folder / name, variant=_variant(folder / name, dtype), **common)
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=modules["vae"], text_encoder=None, text_encoder_2=modules["text_encoder_2"], tokenizer=None,
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2", local_files_only=True),
        unet=UNet2DConditionModel.from_pretrained(folder / "unet", variant=_variant(folder / "unet", dtype), **common),
        scheduler=getattr(diffusers, index["scheduler"][1]).from_pretrained(folder / "scheduler", local_files_only=True),
        requires_aesthetics_score=index.get("requires_aesthetics_score", True),
        force_zeros_for_empty_prompt=index.get("force_zeros_for_empty_prompt", False), add_watermarker=False)
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module) and name not in shared:
            module.to(DEVICE)
    pipe.set_progress_bar_config(disable=True)
    return LoadedRefiner(info=SimpleNamespace(id=REFINER["id"]), revision=None, path=str(folder), pipe=pipe,
                         shared=tuple(shared), extra_bytes=0, own_scheduler=pipe.scheduler)


def load_embeddings():
    """name -> (CLIP-L, CLIP-G) vectors of each embedding file, checked against its recorded sha256."""
    vectors = {}
    for name, path, sha256 in EMBEDDINGS:
        data = Path(path).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            sys.exit(f"embedding {path} changed since the job (its sha256 is not the recorded one)")
        tensors = load_safetensors(data)
        vectors[name] = (tensors["clip_l"], tensors["clip_g"])
    return vectors


def apply_loras(pipe):
    """Each LoRA file (checked against its recorded sha256) as an adapter, all active at their weights."""
    names = []
    for path, sha256, _weight in LORAS:
        data = Path(path).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            sys.exit(f"LoRA {path} changed since the job (its sha256 is not the recorded one)")
        names.append(f"lora_{sha256[:16]}")
        pipe.load_lora_weights(load_safetensors(data), adapter_name=names[-1])
    if names:
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=[weight for _path, _sha256, weight in LORAS])


def apply_ip_adapter(pipe, ip):
    """The IP-Adapter and its image encoder loaded into the model, at the recorded scale."""
    if ip is None:
        return
    pipe.load_ip_adapter(ip.root, subfolder=ip.subfolder, weight_name=Path(ip.path).name,
                         image_encoder_folder=ip.encoder_folder, local_files_only=True)
    if pipe.image_encoder is not None and pipe.image_encoder.device != pipe._execution_device:
        pipe.image_encoder.to(pipe._execution_device)
    pipe.set_ip_adapter_scale(ip.scale)


def load_controlnets(loaded, units):
    """Each unit's ControlNet folder in the UNet's dtype, where the engine's load_controlnet finds it loaded."""
    unet = loaded.pipe.unet
    for unit in units:
        model = diffusers.ControlNetModel.from_pretrained(unit.model_path, torch_dtype=unet.dtype,
                                                          local_files_only=True)
        model.to(unet.device)
        model.requires_grad_(False)
        loaded.controlnets[(unit.model_path, unit.model_sha256)] = model


class Engine:
    """What the engine's functions ask of their engine: pipelines sharing one model, schedulers, calls."""

    device = DEVICE

    def pipeline(self, loaded, mode, *, mixing=False, controls=()):
        if controls:
            return controlnet_pipeline(loaded, mode, controls)
        return mode_pipeline(loaded, mode, mixing)

    make_scheduler = staticmethod(fresh_scheduler)

    def call_pipeline(self, pipe, **kwargs):
        seed_brownian_noise(pipe.scheduler, kwargs.get("generator"))
        return pipe(**kwargs)


def warn_on_other_versions():
    """Other library versions than the job's may move pixels: said, not refused."""
    now = {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    other = [f"{name} {now[name]} (the job: {version})" for name, version in VERSIONS.items()
             if version and now[name] != version]
    if other:
        print(f"note: {', '.join(other)}; the pixels may differ from the recorded ones", file=sys.stderr)


def main(out_dir="."):
    warn_on_other_versions()
    if DEVICE == "cpu" and CPU_THREADS:
        torch.set_num_threads(CPU_THREADS)  # a different thread count can move a float's last bit
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine, r = Engine(), REQUEST
    base = load_model()
    loaded = SimpleNamespace(pipe=base, derived={}, own_scheduler=base.scheduler, controlnets={})
    apply_loras(base)
    apply_ip_adapter(base, r.ip_adapter)
    load_controlnets(loaded, r.controlnets)
    pipe = engine.pipeline(loaded, r.mode, mixing=not PLAIN, controls=r.controlnets)
    pipe.scheduler = engine.make_scheduler(loaded, r.scheduler.cls, r.scheduler.kwargs)
    vectors = load_embeddings()
    arguments = CallArguments(pipe, r, PLAIN, TEXTS, vectors)
    hires = HiresPass(engine, loaded, r, pipe) if r.hires else None
    refiner = None
    if REFINER:  # the base stops at the switch, the refiner finishes (A1111's hand-off)
        refiner = RefinerStage(load_refiner(base), r, lambda: engine.make_scheduler(loaded, r.scheduler.cls,
                                                                                     r.scheduler.kwargs),
                               TEXTS, vectors)
    for call in CALLS:  # the job's pipeline calls: batching can move a pixel's last bit
        specs = [ImageSpec(**spec) for spec in call]
        labels = [f"image {spec.index + 1} (seed {spec.seed})" for spec in specs]
        pipe.noise_mix = arguments.noise_mix(specs)  # per-image noise mixes (a per-image pipeline reads it)
        first = arguments(specs)
        latents = engine.call_pipeline(pipe, **(refiner.base_arguments(first) if refiner else first)).images
        if hires is not None:  # fresh generators of the same seeds, as the engine's second pass
            latents = hires(latents, arguments(specs), labels)
        pipe.noise_mix = None
        if refiner is not None:
            latents = refiner.refine(engine, latents, specs, first)
        decoded = decode_guarded(refiner.decoder(pipe) if refiner else pipe, latents, labels)
        for spec, label, image, problem in zip(specs, labels, decoded.images, decoded.problems):
            if image is None:
                print(f"{label} not saved: {problem}")
                continue
            if arguments.inpaint is not None:  # the original pasted back outside the mask (A1111's overlay)
                image = arguments.inpaint.finish(image)
            path = out / FILE_NAMES[spec.index]
            image.save(path)
            print(path)


if __name__ == "__main__":
    main(*sys.argv[1:2])
'''
