"""Every SDXL_NB_* environment setting, one function each, read at call time (no torch, nothing cached)."""

from __future__ import annotations

import os

# The variable names, for messages that tell a user what to set.
OUTPUT = "SDXL_NB_OUTPUT"
CACHE = "SDXL_NB_CACHE"
PRESETS = "SDXL_NB_PRESETS"
USER_PRESETS = "SDXL_NB_USER_PRESETS"
MODEL = "SDXL_NB_MODEL"
DEVICE = "SDXL_NB_DEVICE"
DTYPE = "SDXL_NB_DTYPE"
AUTO_TUNE = "SDXL_NB_AUTO_TUNE"
DEBUG = "SDXL_NB_DEBUG"
S3_URL = "SDXL_NB_S3_URL"
S3_ENDPOINT = "SDXL_NB_S3_ENDPOINT"
COMFY_URL = "SDXL_NB_COMFY_URL"
LAMBDA_API = "SDXL_NB_LAMBDA_API"
LORAS = "SDXL_NB_LORAS"
EMBEDDINGS = "SDXL_NB_EMBEDDINGS"
CHECKPOINTS = "SDXL_NB_CHECKPOINTS"
UPSCALERS = "SDXL_NB_UPSCALERS"
CONTROLNETS = "SDXL_NB_CONTROLNETS"
ANNOTATORS = "SDXL_NB_ANNOTATORS"

_ON = ("1", "true", "yes", "on")


def _value(name: str) -> str | None:
    # Read at every call, so a variable set in a running kernel (or by a test's monkeypatch) counts at once;
    # an empty value is unset, as `export NAME=` is the usual way to clear one.
    return os.environ.get(name) or None


def output_dir() -> str | None:
    # The output folder of jobs when none is given (CLI --out, a panel's folder); else ./output_images.
    return _value(OUTPUT)


def cache_dir() -> str | None:
    # Where sdxl_nb keeps what it builds (the tiny-sdxl model); else ~/.cache/sdxl_nb.
    return _value(CACHE)


def presets_path() -> str | None:
    # A presets.json used instead of the one shipped with the package.
    return _value(PRESETS)


def user_presets_path() -> str | None:
    # The user's own styles file; else ~/.config/sdxl_nb/user_presets.json.
    return _value(USER_PRESETS)


def model() -> str | None:
    # The model used when a request names none; else the presets' default, a cached SDXL model, or tiny-sdxl.
    return _value(MODEL)


def device() -> str | None:
    # The torch device of the local engine ("cpu", "cuda", "cuda:1"); else CUDA when present, else the CPU.
    return _value(DEVICE)


def dtype() -> str | None:
    # The local engine's weight dtype ("float16", "bfloat16", "float32" or fp16/bf16/fp32); else by device.
    return _value(DTYPE)


def auto_tune() -> bool:
    # 1/true/yes/on: the kernel engine retries lighter settings on out of memory (the lab's panels turn it on).
    return (_value(AUTO_TUNE) or "").lower() in _ON


def debug() -> bool:
    # Any value: the CLI shows the traceback of an unexpected failure instead of one line.
    return _value(DEBUG) is not None


def s3_url() -> str | None:
    # s3://bucket/prefix: every job is mirrored there after it is recorded locally.
    return _value(S3_URL)


def s3_endpoint() -> str | None:
    # An S3-compatible endpoint (MinIO) for the mirror; else AWS.
    return _value(S3_ENDPOINT)


def comfy_url() -> str | None:
    # The ComfyUI server of the comfy backend when no URL is given.
    return _value(COMFY_URL)


def lora_paths() -> list[str]:
    # Folders of LoRA files (os.pathsep-separated); an A1111 or ComfyUI root is searched in models/Lora or
    # models/loras. The embedded demo LoRA is always listed.
    return [part for part in (_value(LORAS) or "").split(os.pathsep) if part]


def embedding_paths() -> list[str]:
    # Folders of textual-inversion embeddings (os.pathsep-separated); an A1111 or ComfyUI root is searched in
    # embeddings/ or models/embeddings.
    return [part for part in (_value(EMBEDDINGS) or "").split(os.pathsep) if part]


def checkpoint_paths() -> list[str]:
    # Folders of single-file SDXL checkpoints (.safetensors; os.pathsep-separated); an A1111 or ComfyUI root is
    # searched in models/Stable-diffusion or models/checkpoints. Listed beside the Hugging Face cache's models.
    return [part for part in (_value(CHECKPOINTS) or "").split(os.pathsep) if part]


def upscaler_paths() -> list[str]:
    # Folders of upscaler models (.pth/.safetensors: ESRGAN, SwinIR, DAT...; os.pathsep-separated); an A1111 or
    # ComfyUI root is searched in models/ESRGAN (and its siblings) or models/upscale_models.
    return [part for part in (_value(UPSCALERS) or "").split(os.pathsep) if part]


def controlnet_paths() -> list[str]:
    # Folders of SDXL ControlNets (os.pathsep-separated): single .safetensors files or diffusers folders; an A1111
    # or ComfyUI root is searched in models/ControlNet or models/controlnet. The embedded tiny one is always listed.
    return [part for part in (_value(CONTROLNETS) or "").split(os.pathsep) if part]


def annotators_dir() -> str | None:
    # The folder of ControlNet annotator weights (the files of lllyasviel/Annotators: dpt_hybrid-midas-501f0c75.pt,
    # sk_model.pth, body_pose_model.pth...), read by the depth, lineart, openpose... preprocessors.
    return _value(ANNOTATORS)


def lambda_api_url() -> str | None:
    # Another Lambda Cloud API base (a proxy, or a local fake in tests); else Lambda's own.
    return _value(LAMBDA_API)


IP_ADAPTERS = "SDXL_NB_IP_ADAPTERS"


def ip_adapter_paths() -> list[str]:
    # Folders of IP-Adapter weights (os.pathsep-separated), each an h94/IP-Adapter layout (sdxl_models/*.safetensors
    # with sdxl_models/image_encoder or models/image_encoder) or a folder of .safetensors beside an image_encoder/.
    # The embedded tiny adapter is always listed; h94/IP-Adapter in the Hugging Face cache is found too.
    return [part for part in (_value(IP_ADAPTERS) or "").split(os.pathsep) if part]


AESTHETIC = "SDXL_NB_AESTHETIC"
INCEPTION = "SDXL_NB_INCEPTION"


def aesthetic_path() -> str | None:
    # The LAION improved-aesthetic-predictor's MLP (.safetensors or .pth, e.g. sac+logos+ava1-l14-linearMSE.pth),
    # read by `sdxl-nb score --scorer aesthetic`.
    return _value(AESTHETIC)


def inception_path() -> str | None:
    # torch-fidelity's Inception weights (weights-inception-2015-12-05-6726825d.pth) for FID/KID; else the file in
    # torch hub's checkpoints folder. Never downloaded.
    return _value(INCEPTION)
