"""Which files a record names: its images (an animation's frames), grids, animations, control maps and inputs."""

from __future__ import annotations

INPUT_KEYS = ("init_image", "mask_image", "ip_images")


def named_files(record: dict) -> list[tuple[str, dict]]:
    """(role, {path, sha256, ...}) for every file a record names: images, frames, any other output object with a
    path and a sha256 (a grid, an animation; later schemas may add some), and the init/mask inputs."""
    found: list[tuple[str, dict]] = []
    for key, value in record.items():
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            if key == "controlnets" and isinstance(entry, dict) and isinstance(entry.get("image"), dict):
                entry = entry["image"]  # a ControlNet's control image: an input, like the init image
                if isinstance(entry.get("path"), str):
                    found.append(("input", entry))
                continue
            if isinstance(entry, str) and key == "images":
                entry = {"path": entry}  # older records listed bare names
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                if key in INPUT_KEYS:
                    found.append(("input", entry))
                elif key in ("images", "frames") or "sha256" in entry:
                    found.append((key.removesuffix("s") if key in ("images", "frames") else key, entry))
    return found


def output_paths(record: dict) -> list[str]:
    """The paths of the files the job itself wrote (inputs aside), each once, in record order."""
    paths: list[str] = []
    for role, entry in named_files(record):
        if role != "input" and entry["path"] not in paths:
            paths.append(entry["path"])
    return paths
