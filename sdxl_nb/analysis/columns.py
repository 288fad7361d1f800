"""The DataFrame's columns: which record key feeds which column, typing, derived columns, order."""

from __future__ import annotations

import numpy as np
import pandas as pd

# (column, record key, kind). Kinds: int (nullable Int64), float, cat (categorical), str, time (UTC),
# bool (nullable), obj (kept as the Python value), vae (the VAE's id), auto (inferred; unknown keys).
JOB_FIELDS = [
    ("schema", "schema", "int"), ("job_id", "job_id", "str"), ("mode", "mode", "cat"), ("status", "status", "cat"),
    ("started_at", "started_at", "time"), ("finished_at", "finished_at", "time"),
    ("prompt", "prompt", "str"), ("negative_prompt", "negative_prompt", "str"),
    ("styled_prompt", "styled_prompt", "str"), ("effective_negative_prompt", "effective_negative_prompt", "str"),
    ("steps", "steps", "int"), ("cfg", "cfg", "float"), ("width", "width", "int"), ("height", "height", "int"),
    ("batch", "batch", "int"), ("chunk_size", "chunk_size", "int"), ("job_seed", "seed", "int"),
    ("strength", "strength", "float"), ("peak_memory_bytes", "peak_memory_bytes", "int"),
    ("events", "events", "obj"), ("warnings", "warnings", "obj"), ("notes", "notes", "obj"), ("error", "error", "str"),
]
_ENV_TEXT = ("python", "platform", "torch", "diffusers", "transformers", "sdxl_nb", "cuda", "gpu", "dtype", "attention")
# record key -> (column prefix, [(sub-key, column, kind)], sub-keys left out of the frame)
NESTED_FIELDS = {
    "model": ("model", [("id", "model_id", "cat"), ("revision", "model_revision", "cat"),
                        ("source", "model_source", "cat"), ("dtype", "model_dtype", "cat"),
                        ("vae", "model_vae", "vae")], set()),
    "device": ("device", [("type", "device_type", "cat"), ("name", "device_name", "cat")], set()),
    # The full scheduler config stays in the record (read_logged_records); it would cost ~2 kB a row here.
    "scheduler": ("scheduler", [("name", "scheduler_name", "cat"), ("class", "scheduler_class", "cat")], {"config"}),
    "style": ("style", [("name", "style_name", "cat"), ("hash", "style_hash", "cat")], set()),
    "timings": ("timings", [(key, f"timings_{key}", "float") for key in ("load_s", "generate_s", "save_s", "total_s")],
                set()),
    "env": ("env", [(key, f"env_{key}", "cat") for key in _ENV_TEXT] + [("deterministic", "env_deterministic", "bool")],
            set()),
    "init_image": ("init_image", [("path", "init_image_path", "str"), ("sha256", "init_image_sha256", "str")],
                   {"size"}),
    "mask_image": ("mask_image", [("path", "mask_image_path", "str"), ("sha256", "mask_image_sha256", "str")],
                   {"size"}),
}
# Image (or animation frame) keys -> columns.
IMAGE_FIELDS = [("index", "image_index", "int"), ("seed", "seed", "int"), ("path", "image_path", "str"),
                ("sha256", "image_sha256", "str"), ("prompt", "frame_prompt", "str"), ("t", "frame_t", "float")]
KNOWN_TOP_KEYS = frozenset([key for _c, key, _k in JOB_FIELDS] + list(NESTED_FIELDS) + ["seeds", "images", "frames"])
KNOWN_IMAGE_KEYS = frozenset(key for key, _c, _k in IMAGE_FIELDS)

# What a bare string meant in older records (e.g. "model": "tiny-sdxl").
_MAIN_KEY = {"model": "id", "device": "type", "scheduler": "name", "style": "name", "init_image": "path",
             "mask_image": "path"}
_EMPTY: dict = {}

ORDER = [
    "job", "log", "line", "job_id", "schema", "mode", "status", "started_at", "finished_at",
    "model_id", "model_revision", "model_source", "model_dtype", "model_vae", "scheduler_name", "scheduler_class",
    "style_name", "style_hash", "width", "height", "megapixels", "steps", "effective_steps", "cfg", "strength",
    "batch", "chunk_size", "job_seed", "n_images", "image_index", "seed", "image_path", "image_sha256",
    "frame_prompt", "frame_t", "prompt", "negative_prompt", "styled_prompt", "effective_negative_prompt",
    "timings_load_s", "timings_generate_s", "timings_save_s", "timings_total_s", "s_per_step", "peak_memory_bytes",
    "device_type", "device_name", *[f"env_{key}" for key in _ENV_TEXT], "env_deterministic",
    "init_image_path", "init_image_sha256", "mask_image_path", "mask_image_sha256", "events", "warnings", "notes",
    "error",
]


def coerce_nested(key: str, value) -> dict:
    """A nested field that is not an object: a bare string from an older schema, else nothing."""
    if value.__class__ is str and key in _MAIN_KEY:
        return {_MAIN_KEY[key]: value}
    return _EMPTY


def coerce_image(value) -> dict:
    """An image entry that is not an object: older records listed bare file names."""
    return {"path": value} if value.__class__ is str else _EMPTY


def _objects(values: list) -> np.ndarray:
    # pandas keeps lists and dicts as single objects (numpy would try to make a 2-D array).
    return pd.Series(values, dtype=object).to_numpy()


def _floats(values: list) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64)
        if array.ndim == 1:
            return array
    except (TypeError, ValueError):
        pass
    # A value of the wrong type (text, a list) loads as missing rather than failing the whole load.
    return pd.to_numeric(pd.Series(_objects(values)).map(_scalar_or_none), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)


def _scalar_or_none(value):
    return value if isinstance(value, (int, float, str)) else None


def _hashable(value):
    return value if value is None or isinstance(value, (str, int, float)) else str(value)


class Codes:
    """A categorical column built as values arrive: one small code per job, each distinct value kept once."""

    def __init__(self, extract_id: bool = False):
        self.lookup: dict = {}
        self.codes: list[int] = []
        self.extract_id = extract_id  # {"id": ..., "revision": ...} objects are categorised by their id

    def extend(self, values) -> None:
        if self.extract_id:
            values = [v.get("id") if v.__class__ is dict else v for v in values]
        lookup = self.lookup
        setdefault = lookup.setdefault
        try:
            self.codes.extend([setdefault(v, len(lookup)) for v in values])
        except TypeError:  # an unhashable value (a list where text belongs) is compared as its text
            self.codes.extend([setdefault(_hashable(v), len(lookup)) for v in values])

    def categorical(self) -> pd.Categorical:
        values = list(self.lookup)
        keep = sorted((i for i, v in enumerate(values) if v is not None), key=lambda i: str(values[i]))
        mapping = np.full(len(values) + 1, -1, dtype=np.int32)  # missing (None) becomes code -1
        mapping[keep] = np.arange(len(keep), dtype=np.int32)
        codes = mapping[np.asarray(self.codes, dtype=np.int64)] if self.codes else np.zeros(0, dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=pd.Index([values[i] for i in keep]))


def convert(values, kind: str):
    """Type one column's raw values; the result supports `.take` (expanding jobs to image rows)."""
    if isinstance(values, Codes):
        return values.categorical()
    if kind == "float":
        return _floats(values)
    if kind == "int":
        array = _floats(values)
        missing = ~np.isfinite(array)
        return pd.arrays.IntegerArray(np.where(missing, 0, array).astype(np.int64), missing)
    if kind in ("cat", "vae"):
        codes = Codes(extract_id=kind == "vae")
        codes.extend(values)
        return codes.categorical()
    if kind == "str":
        # Inferred, so pandas 3 gives its string dtype and pandas 2 object; anything not text stays as it is.
        return pd.Series(_objects(values), copy=False).array
    if kind == "time":
        text = _objects([v if v.__class__ is str else None for v in values])
        return pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce").array
    if kind == "bool":
        return pd.array([v if v.__class__ is bool else None for v in values], dtype="boolean")
    if kind == "obj":
        return _objects(values)
    return pd.Series(values).array  # "auto": keys this version does not know, inferred as pandas sees them


def derive(job: dict) -> dict:
    """Columns computed from the record: size in megapixels, steps actually run, seconds per step."""
    width = job["width"].to_numpy(dtype=np.float64, na_value=np.nan)
    height = job["height"].to_numpy(dtype=np.float64, na_value=np.nan)
    steps = job["steps"].to_numpy(dtype=np.float64, na_value=np.nan)
    strength = job["strength"]
    # img2img/inpaint run only the last int(steps * strength) steps (diffusers' rule).
    effective = np.where(np.isnan(strength), steps, np.minimum(np.floor(steps * strength), steps))
    images = job["n_images"].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_step = job["timings_generate_s"] / (effective * np.where(images > 0, images, np.nan))
    missing = ~np.isfinite(effective)
    return {
        "megapixels": width * height / 1e6,
        "effective_steps": pd.arrays.IntegerArray(np.where(missing, 0, effective).astype(np.int64), missing),
        "s_per_step": np.where(np.isfinite(per_step), per_step, np.nan),
    }


def ordered(columns: dict) -> dict:
    """The known columns in reading order, then any unknown ones in the order they were met."""
    first = [name for name in ORDER if name in columns]
    rest = [name for name in columns if name not in set(ORDER)]
    return {name: columns[name] for name in first + rest}
