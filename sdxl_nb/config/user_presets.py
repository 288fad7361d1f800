"""User styles: create, edit and delete styles in the user presets file layered over presets.json."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from sdxl_nb.config.json_checker import read_json_file
from sdxl_nb.config.presets import StylePreset, default_user_presets_path, load_presets, parse_user_styles
from sdxl_nb.errors import PresetError, one_line

USER_SCHEMA = 1
STYLE_FIELDS = ("name", "prompt", "negative", "description", "scheduler", "steps", "cfg")
_LISTENERS: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener()` after every style saved or deleted in this process (style lists re-read the presets
    then); returns an unsubscribe."""
    _LISTENERS.append(listener)

    def unsubscribe() -> None:
        if listener in _LISTENERS:
            _LISTENERS.remove(listener)

    return unsubscribe


def _changed() -> None:
    for listener in list(_LISTENERS):
        try:
            listener()
        except Exception as exc:  # the file is saved: a view that cannot follow must not undo that or stop the rest
            warnings.warn(f"a style list did not refresh: {one_line(exc)}", stacklevel=2)


def style_to_dict(style: StylePreset) -> dict:
    """The JSON form of a style, as presets.json writes it (unset overrides left out)."""
    raw = {name: getattr(style, name) for name in STYLE_FIELDS}
    return {key: value for key, value in raw.items() if value is not None}


def _read_raw(path: Path) -> dict:
    if not path.exists():
        return {"schema": USER_SCHEMA, "styles": []}
    raw = read_json_file(path, "user presets file")  # a broken file is refused, never overwritten
    if not isinstance(raw, dict) or not isinstance(raw.get("styles", []), list):
        raise PresetError(f"{path}: expected an object with a \"styles\" list")
    raw.setdefault("styles", [])
    return raw


def _write_raw(path: Path, raw: dict) -> None:
    # Whole file or nothing: a temporary file in the same folder, fsynced, then renamed over the old one.
    handle, temp = tempfile.mkstemp(prefix=".user_presets-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(raw, out, indent=1, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def _clean(style: dict | StylePreset) -> dict:
    raw = style_to_dict(style) if isinstance(style, StylePreset) else dict(style)
    for key in ("negative", "description"):
        if raw.get(key) == "":
            raw.pop(key)  # empty text is the same as unset; keeps the file as presets.json would have it
    for key in ("scheduler", "steps", "cfg"):
        if raw.get(key) in ("", None):
            raw.pop(key, None)
    if isinstance(raw.get("name"), str):
        raw["name"] = raw["name"].strip()
    if not raw.get("name"):
        raise PresetError("a style needs a name")
    return raw


def save_style(style: dict | StylePreset, path: str | os.PathLike | None = None, *,
               replace_name: str | None = None) -> StylePreset:
    """Add or replace a style in the user presets file; return it as loaded.

    The new file content is validated with presets.json's rules (scheduler names come from the
    shipped presets) before anything is written; an invalid style raises PresetError and leaves the
    file as it was. A user style with a built-in style's name overrides it. `replace_name` renames:
    the user style of that name is dropped in the same write.
    """
    path = Path(path) if path else default_user_presets_path()
    entry = _clean(style)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        raw = _read_raw(path)
        drop = {entry["name"], replace_name} - {None}
        raw["styles"] = [s for s in raw["styles"] if not (isinstance(s, dict) and s.get("name") in drop)] + [entry]
        base = load_presets(user_layer=False)
        styles = parse_user_styles(raw, str(path), base.schedulers)
        _write_raw(path, raw)
    _changed()
    return styles[entry["name"]]


def delete_style(name: str, path: str | os.PathLike | None = None) -> bool:
    """Remove a user style (a built-in style it overrode shows again); False when there was none."""
    path = Path(path) if path else default_user_presets_path()
    if not path.exists():
        return False
    with FileLock(str(path) + ".lock"):
        raw = _read_raw(path)
        kept = [s for s in raw["styles"] if not (isinstance(s, dict) and s.get("name") == name)]
        if len(kept) == len(raw["styles"]):
            return False
        raw["styles"] = kept
        _write_raw(path, raw)
    _changed()
    return True


def style_from_fields(name: str, prompt: str, negative: str = "", description: str = "", scheduler: str | None = None,
                      steps: str | int | None = "", cfg: str | float | None = "") -> dict:
    """A style dict from form text (empty override fields mean "not set"); bad numbers raise PresetError."""
    def number(text, label: str, kind, accepted: str):
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        try:
            value = kind(text.strip()) if isinstance(text, str) else kind(text)
        except ValueError:
            raise PresetError(f"style {label} {text!r} is not valid; accepted: {accepted}, or empty") from None
        return value

    raw = {"name": name, "prompt": prompt, "negative": negative, "description": description,
           "scheduler": scheduler or None,
           "steps": number(steps, "steps", int, "a whole number of at least 1"),
           "cfg": number(cfg, "cfg", float, "a number of at least 0")}
    # The prompt stays even when empty (a style may leave the prompt as typed); other blanks mean "not set".
    return {key: value for key, value in raw.items() if key == "prompt" or value not in (None, "")}
