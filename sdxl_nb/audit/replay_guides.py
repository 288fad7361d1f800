"""The IP-Adapter and ControlNet units of a record, as a re-run loads them (files only from the user's folders)."""

from __future__ import annotations

from pathlib import Path

from sdxl_nb.audit.integrity import input_file
from sdxl_nb.audit.replay_files import RECORD_SHOWN, ReplayError, checked_file, entries, recorded_size, trusted
from sdxl_nb.config.input_image import InputImage
from sdxl_nb.config.limits import MAX_INPUT_BYTES
from sdxl_nb.config.trusted_folders import OUTSIDE_MODEL_FOLDERS, NotTrusted, check_model_file, in_model_folders
from sdxl_nb.record.png_record import shown


def recorded_ip_adapter(record: dict, folder: str | Path):
    """The IpAdapterUse a job ran with (None when it had none); its weights and encoder must lie in the user's
    IP-Adapter folders, its images in the audited folder, and every file must still hold what the job used."""
    from sdxl_nb.config.ip_adapters import _ENCODER_WEIGHTS, IpAdapterFile, IpAdapterUse

    entry = record.get("ip_adapter")
    if entry is None:
        return None
    keys = ("name", "path", "sha256", "root", "subfolder", "image_encoder", "scale")
    if not isinstance(entry, dict) or any(key not in entry for key in keys):
        missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
        raise ReplayError(f"the record's ip_adapter has no {', '.join(missing)}")
    encoder = entry["image_encoder"]
    texts = (entry["name"], entry["path"], entry["root"], entry["subfolder"])
    if not (all(isinstance(v, str) for v in texts) and isinstance(encoder, dict)
            and isinstance(encoder.get("folder"), str) and isinstance(encoder.get("path"), str)):
        raise ReplayError("the record's ip_adapter names its files by something other than text")
    name = entry["name"]
    what = f"IP-Adapter {name!r}"
    if not in_model_folders(entry["path"], "ip_adapter"):  # the user's own copy, laid out as recorded (root/subfolder)
        found = trusted(entry["path"], "ip_adapter", entry["sha256"], what)
        depth = len(Path(entry["subfolder"]).parts)
        root = found.parents[depth] if depth < len(found.parents) else found.parent
        if root.joinpath(entry["subfolder"], found.name) != found:
            raise NotTrusted(OUTSIDE_MODEL_FOLDERS, entry["path"], what)
        moved = IpAdapterFile(name, str(found), str(root), entry["subfolder"], encoder["folder"], "")
        entry, encoder = {**entry, "path": str(found), "root": str(root)}, {**encoder, "path": str(moved.encoder_path)}
    # What diffusers' load_ip_adapter opens: root/subfolder/<weight name> and the encoder folder under root.
    loaded = Path(entry["root"]) / entry["subfolder"] / Path(entry["path"]).name
    encoder_path = IpAdapterFile(name, entry["path"], entry["root"], entry["subfolder"], encoder["folder"], "").encoder_path
    for path in (entry["path"], loaded, encoder["path"], encoder_path):
        check_model_file(path, "ip_adapter", what)
    sha = checked_file(Path(entry["path"]), entry["sha256"], what)
    weights = [encoder_path / w for w in _ENCODER_WEIGHTS if (encoder_path / w).is_file()]
    for weight in weights:
        check_model_file(weight, "ip_adapter", f"{what}'s image encoder")
    encoder_sha = checked_file(weights[0] if weights else encoder_path / _ENCODER_WEIGHTS[0],
                                encoder.get("sha256"), f"{what}'s image encoder")
    images = []
    for number, image in enumerate(entries(record, "ip_images"), 1):
        if not (isinstance(image, dict) and isinstance(image.get("path"), str)):
            raise ReplayError(f"the record's IP-Adapter image {number} has no path")
        path = input_file(Path(folder), f"IP-Adapter image {number}", image["path"])
        actual = checked_file(path, image.get("sha256"), f"IP-Adapter image {number}", MAX_INPUT_BYTES)
        images.append(InputImage(path=str(path), sha256=actual, size=recorded_size(image.get("size")) or (0, 0)))
    if not images:
        raise ReplayError("the record's IP-Adapter has no ip_images")
    scale = entry["scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ReplayError(f"the record's IP-Adapter scale {shown(scale, RECORD_SHOWN)} is not a number")
    return IpAdapterUse(name=name, path=entry["path"], sha256=sha, a1111_hash=str(entry.get("a1111_hash") or ""),
                        root=entry["root"], subfolder=entry["subfolder"], encoder_folder=encoder["folder"],
                        encoder_sha256=encoder_sha, encoder_revision=encoder.get("revision"), images=tuple(images),
                        scale=float(scale))


def _trusted_controlnet(entry: object, position: int, folder: Path) -> object:
    """The unit's entry with its control image resolved inside the audited folder; NotTrusted when its weights lie
    outside the user's ControlNet folders and they hold no copy (weights gone from there are found by name, as
    recorded_unit does)."""
    from sdxl_nb.config.controlnets import ControlNetFile
    from sdxl_nb.errors import InputError

    model, image = (entry.get(key) if isinstance(entry, dict) else None for key in ("model", "image"))
    if not (isinstance(model, dict) and isinstance(image, dict) and isinstance(image.get("path"), str)):
        return entry  # recorded_unit says what is missing
    what = f"ControlNet {position} {str(model.get('name'))!r}"
    path = model.get("path")
    if not isinstance(path, str) or not path:
        raise ReplayError(f"the record's {what} has no path")
    if Path(path).exists():  # the user's own copy of weights that lie outside their folders is used instead
        name = str(model.get("name"))
        found = trusted(path, "controlnet", model.get("sha256"), what,
                         lambda candidate: ControlNetFile(name, str(candidate), "").content_hash())
        path = path if in_model_folders(path, "controlnet") else str(found)
        try:
            check_model_file(ControlNetFile(name, path, "").weights_file(), "controlnet", what)
        except InputError as exc:
            raise ReplayError(str(exc)) from None
    checked = input_file(folder, f"ControlNet {position} control image", image["path"])
    return {**entry, "model": {**model, "path": path}, "image": {**image, "path": str(checked)}}


def recorded_controlnets(record: dict, folder: Path) -> tuple:
    """The ControlNets a job ran with: weights and control images checked against their recorded sha256."""
    from sdxl_nb.request.control import recorded_unit

    units = []
    for position, entry in enumerate(entries(record, "controlnets")):
        entry = _trusted_controlnet(entry, position, Path(folder))
        try:
            units.append(recorded_unit(entry, position, folder))
        except NotTrusted:
            raise
        except (ValueError, TypeError) as exc:  # TypeError: a recorded setting of the wrong type
            raise ReplayError(str(exc)) from None
    return tuple(units)
