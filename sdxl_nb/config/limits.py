"""The accepted range of every setting, shared by presets validation and request resolution; no torch."""

from sdxl_nb.errors import InputError

MIN_SIZE, MAX_SIZE = 64, 4096  # pixels per side, in multiples of 8
MAX_STEPS = 500
MAX_CFG = 50.0
MAX_BATCH = 64
MAX_SEED = 2**32 - 1  # A1111's range; image i of a batch uses seed + i, which must stay inside it

# Init and mask images are decoded whole: above this many pixels (8192 x 8192) an input is refused before
# decoding, so a PNG that declares 30000 x 30000 (a decompression bomb) costs a header read, not gigabytes.
MAX_INPUT_PIXELS = 8192 * 8192
MAX_INPUT_BYTES = 256 * 2**20  # the file itself, read whole to hash it


def strength_steps(steps: int, strength: float) -> int:
    """The denoising steps img2img and inpaint run: diffusers' `get_timesteps` keeps int(steps * strength)
    of the schedule's steps (at most all of them); A1111 and the ComfyUI workflow run the same count."""
    return min(int(steps * strength), steps)


def check_int(value: object, name: str, low: int, high: int) -> int:
    """A whole number within [low, high] (bools refused), else InputError naming the accepted range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise InputError(f"{name} {value} is out of range; accepted: {low} to {high}")
    return value


def check_number(value: object, name: str) -> float:
    """A real number (bools and NaN refused), else InputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InputError(f"{name} must be a number, got {value!r}")
    return float(value)
