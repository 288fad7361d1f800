"""ControlNet nodes of a ComfyUI graph: LoadImage (+ ImageScale, Canny), ControlNetLoader, ControlNetApplyAdvanced."""

from __future__ import annotations

from pathlib import Path

CANNY_NOTE = ("ComfyUI's Canny node (kornia, thresholds / 255) draws edges a little differently from cv2.Canny, "
              "which the local engine and A1111 run: the control map, so the image, differs slightly there")


def controlnet_file_name(unit) -> str:
    """The name ControlNetLoader loads it by, in the server's models/controlnet folder."""
    path = Path(unit.model_path)
    return path.name if path.suffix == ".safetensors" else unit.model.rsplit("/", 1)[-1] + ".safetensors"


def placement_note(unit) -> str:
    """Where to put a unit's weights on the server so that ControlNetLoader lists them under the name the workflow
    loads. ComfyUI lists the files of folder_paths' "controlnet" key (models/controlnet and models/t2i_adapter), a
    file in a sub-folder as "sub/file": a diffusers folder copied there would be listed as
    "<folder>/diffusion_pytorch_model.safetensors", not by the workflow's name, so the note names its weights file
    and the name to copy it to."""
    from sdxl_nb.backends.comfy.client import server_folder

    name, path = controlnet_file_name(unit), Path(unit.model_path)
    folder = server_folder("controlnet").split(" or ")[0]
    if path.suffix == ".safetensors":
        return f"the workflow loads ControlNet {name}: put {path} in ComfyUI's {folder} folder"
    try:
        from sdxl_nb.config.controlnets import ControlNetFile

        weights = ControlNetFile(unit.model, unit.model_path, unit.model_source).weights_file()
    except Exception:  # noqa: BLE001 - the note still says where the file goes when the folder cannot be read now
        weights = path / "diffusion_pytorch_model.safetensors"
    return f"the workflow loads ControlNet {name}: copy {weights} to ComfyUI's {folder}/{name}"


def apply_controlnets(g, r, positive: list, negative: list, vae: list, name_of, notes: list[str]) -> tuple[list, list]:
    """Chain one ControlNetApplyAdvanced per unit onto the conditioning; (positive, negative) links after them.

    `g` is the graph being built (g.add(class_type, title, **inputs) -> link), `name_of(InputImage)` the name
    the server loads an input image by (and registers its upload).
    """
    from sdxl_nb.request.resolve import InputImage

    for index, unit in enumerate(r.controlnets):
        image = InputImage(path=unit.image_path, sha256=unit.image_sha256, size=tuple(unit.image_size))
        pixels = g.add("LoadImage", f"Control image {index}", image=name_of(image))
        if tuple(unit.image_size) != (r.width, r.height):  # "Just Resize", with Lanczos as locally
            pixels = g.add("ImageScale", image=pixels, upscale_method="lanczos", width=r.width, height=r.height,
                           crop="disabled")
        if unit.preprocessor not in ("canny", "none"):
            from sdxl_nb.errors import InputError

            raise InputError(f"ComfyUI has no stock node for preprocessor {unit.preprocessor!r}; export with the "
                             "map made here (the job's control map) and preprocessor 'none'")
        if unit.preprocessor == "canny":
            settings = dict(unit.settings)
            pixels = g.add("Canny", f"Canny {index}", image=pixels,
                           low_threshold=round(settings["low_threshold"] / 255, 4),
                           high_threshold=round(settings["high_threshold"] / 255, 4))
            if CANNY_NOTE not in notes:
                notes.append(CANNY_NOTE)
        loader = g.add("ControlNetLoader", f"ControlNet {index}", control_net_name=controlnet_file_name(unit))
        applied = g.add("ControlNetApplyAdvanced", f"Apply ControlNet {index}", positive=positive, negative=negative,
                        control_net=loader, image=pixels, strength=unit.weight, start_percent=unit.start,
                        end_percent=unit.end, vae=vae)
        positive, negative = [applied[0], 0], [applied[0], 1]
    return positive, negative


def missing_controlnets(client, r) -> None:
    """Before any work: the server must hold every ControlNet file the graph's ControlNetLoader nodes name."""
    from sdxl_nb.errors import InputError, ModelUnavailableError

    unrun = [unit.preprocessor for unit in r.controlnets if unit.preprocessor not in ("canny", "none")]
    if unrun:
        raise InputError(f"ComfyUI has no stock node for preprocessor {unrun[0]!r}; run the job here, or pass the "
                         "map made here (the job's control map) with preprocessor 'none'")
    available = client.choices("ControlNetLoader", "control_net_name")
    missing = [controlnet_file_name(unit) for unit in r.controlnets
               if available is not None and controlnet_file_name(unit) not in available]
    if missing:
        from sdxl_nb.backends.comfy.client import server_folder

        raise ModelUnavailableError(f"ControlNet {', '.join(missing)} is not on the ComfyUI server {client.server} "
                                    f"({server_folder('controlnet')}); available: {', '.join(available) or 'none'}")
