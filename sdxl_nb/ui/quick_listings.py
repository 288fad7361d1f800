"""The LoRA and IP-Adapter lists the lab fills its pickers with as it opens: no torch, no builds, no hashing."""

from __future__ import annotations


def tiny_model_built() -> bool:
    from sdxl_nb.config.tiny import tiny_model_dir

    return (tiny_model_dir() / "model_index.json").is_file()


def quick_lora_listing(model: str | None = None) -> list[dict]:
    """lora_listing without the fit check (torch) or the hashes (reading each file whole). The demo LoRA is listed
    when it can be made without torch (from the tiny model's files); Refresh lists it otherwise."""
    from sdxl_nb.config.tiny_lora import demo_lora_path
    from sdxl_nb.jobs.networks import lora_listing

    return lora_listing(model, fits=False, hashes=False, demo=demo_lora_path().is_file() or tiny_model_built())


def quick_ip_adapter_listing(model: str | None = None) -> list[dict]:
    """ip_adapter_listing without the fit check or the hashes; the tiny adapters only once built (their image
    encoders are written with torch)."""
    from sdxl_nb.config.ip_adapters import ip_adapter_listing
    from sdxl_nb.config.tiny_ip_adapter import DEMO_IP_ADAPTER, demo_ip_adapter_root

    built = (demo_ip_adapter_root() / "sdxl_models" / f"{DEMO_IP_ADAPTER}.safetensors").is_file()
    return ip_adapter_listing(model, fits=False, hashes=False, demo=built)
