"""ControlNets on the local engine: weights loaded once per model, pipelines made from the loaded model's modules."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.errors import InputError, ModelUnavailableError, one_line
from sdxl_nb.request.control_maps import unit_map


def _classes() -> dict:
    from diffusers import (
        StableDiffusionXLControlNetImg2ImgPipeline,
        StableDiffusionXLControlNetInpaintPipeline,
        StableDiffusionXLControlNetPipeline,
    )

    return {"txt2img": StableDiffusionXLControlNetPipeline, "img2img": StableDiffusionXLControlNetImg2ImgPipeline,
            "inpaint": StableDiffusionXLControlNetInpaintPipeline}


def load_controlnet(loaded, unit):
    """The unit's ControlNetModel on the model's device and dtype, loaded once per weights file content."""
    from diffusers import ControlNetModel

    key = (unit.model_path, unit.model_sha256)
    cache = loaded.controlnets
    if key in cache:
        return cache[key]
    unet = loaded.pipe.unet
    path = Path(unit.model_path)
    try:
        if path.is_file():
            from sdxl_nb.backends.local.controlnet_file import load_controlnet_file

            model = load_controlnet_file(path, unet, unit.model).to(unet.dtype)
        else:
            from sdxl_nb.backends.local.weights import check_weights_folder

            # diffusers opens the folder's weights itself, after the weights checker accepted every one of them
            # (a .bin goes through torch.load with weights_only=True in diffusers 0.42).
            check_weights_folder(path, what=f"ControlNet {unit.model!r}")
            model = ControlNetModel.from_pretrained(str(path), torch_dtype=unet.dtype, local_files_only=True)
    except ModelUnavailableError:  # already one line naming the file
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelUnavailableError(f"ControlNet {unit.model!r} could not be loaded from {path}: {one_line(exc)}") \
            from exc
    problem = fit_problem(model.config, unet.config)
    if problem:
        raise InputError(f"ControlNet {unit.model!r} {problem}")
    model.to(unet.device)
    model.requires_grad_(False)
    cache[key] = model
    return model


def fit_problem(control_config, unet_config) -> str | None:
    """Why a ControlNet cannot guide this UNet (another text width or block layout), or None."""
    for name in ("cross_attention_dim", "block_out_channels", "addition_embed_type"):
        ours, theirs = getattr(unet_config, name, None), control_config.get(name)
        if theirs is not None and ours is not None and list(_as_list(ours)) != list(_as_list(theirs)):
            return (f"does not fit the model: its {name} is {theirs}, the model's UNet has {ours} (an SD 1.5 "
                    "ControlNet on SDXL?); accepted: a ControlNet made for this model family")
    return None


def check_controlnets(r, *, loaded=None, folder: Path | None = None) -> None:
    """Before any work: each ControlNet fits the model's UNet (a folder by its config, a single file by the names
    and shapes in its header), else InputError naming both."""
    import json

    if loaded is not None:
        unet_config = dict(loaded.pipe.unet.config)
    else:
        unet_config = json.loads((Path(folder) / "unet" / "config.json").read_text(encoding="utf-8"))
    for unit in r.controlnets:
        if Path(unit.model_path).is_file():
            from sdxl_nb.backends.local.controlnet_file import layout_problem, meta_unet

            problem = layout_problem(Path(unit.model_path), meta_unet(unet_config), unit.model)
            if problem:
                raise InputError(problem)
            continue
        config_file = Path(unit.model_path) / "config.json"
        if not config_file.is_file():
            continue
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"ControlNet {unit.model!r}: {config_file} is unreadable ({one_line(exc)})") from None
        problem = fit_problem(config, _Config(unet_config))
        if problem:
            raise InputError(f"ControlNet {unit.model!r} {problem}")


class _Config:
    """A config dict read by attribute, as a loaded UNet's config is."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def _as_list(value):
    return value if isinstance(value, (list, tuple)) else [value]


def controlnet_pipeline(loaded, mode: str, units: tuple):
    """The mode's ControlNet pipeline over the loaded model's own modules (no copy, dtype unchanged)."""
    models = [load_controlnet(loaded, unit) for unit in units]
    # Built from the components (cheap: modules are registered, not copied); from_pipe would cast to float32.
    pipe = _classes()[mode](**loaded.pipe.components, controlnet=models if len(models) > 1 else models[0],
                            add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def control_arguments(r, args: dict) -> None:
    """Add the ControlNet arguments of a request to a call's shared arguments (maps at the job's size)."""
    units = r.controlnets
    maps = [unit_map(unit, (r.width, r.height)) for unit in units]
    one = len(units) == 1
    args.update(controlnet_conditioning_scale=units[0].weight if one else [unit.weight for unit in units],
                control_guidance_start=units[0].start if one else [unit.start for unit in units],
                control_guidance_end=units[0].end if one else [unit.end for unit in units])
    if r.mode == "txt2img":
        args["image"] = maps[0] if one else maps
    else:
        args["control_image"] = maps[0] if one else maps
        args.update(width=r.width, height=r.height)
