"""Engine options (precision, memory layout, fusion, compilation, memory savers): one frozen dataclass; no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sdxl_nb.errors import InputError

DTYPE_NAMES = ("float16", "bfloat16", "float32")


@dataclass(frozen=True)
class EngineOptions:
    dtype: str | None = None  # None: float16 on CUDA, float32 on CPU
    channels_last: bool = False  # UNet weights in channels-last layout: faster convolutions on tensor cores
    fuse_qkv: bool = False  # one fused matmul for attention Q, K and V
    compile: bool = False  # torch.compile of the UNet's repeated transformer blocks (regional: compiles once)
    # Whole-UNet torch.compile with CUDA graphs: the host no longer queues each kernel (on an H100 it queued
    # them about as slowly as the GPU ran them); compiles once per image size. Exclusive with `compile`.
    cuda_graphs: bool = False
    # The UNet's linear layers quantized to float8 (torchao's dynamic float8: weights and activations), run on
    # float8 tensor cores: twice the dense bf16 peak on Hopper. Ada/Hopper GPUs with torchao only.
    fp8: bool = False
    vae_slicing: bool = False  # decode a batch one image at a time: lower peak memory
    vae_tiling: bool = False  # decode in tiles: large images on small GPUs
    cpu_offload: bool = False  # keep idle modules on the CPU (accelerate): lowest memory, slowest
    warmup: bool = False  # one tiny run right after loading, so the first job pays no compile/kernel-selection cost

    def __post_init__(self):
        if self.compile and self.cuda_graphs:
            raise InputError("engine options: compile (regional) and cuda_graphs (whole UNet) exclude each other; "
                             "choose one")

    def record(self) -> dict:
        return asdict(self)

    @property
    def device_bound(self) -> bool:
        """Whether the device decides if these options can run at all (checked when they are chosen)."""
        return self.fp8

    @property
    def needs_reload(self) -> tuple[str, ...]:
        """Options that change the loaded modules themselves (the others can be toggled in place)."""
        return ("dtype", "channels_last", "fuse_qkv", "compile", "cuda_graphs", "fp8", "cpu_offload")


def options_from_dict(raw: dict, where: str = "engine options") -> EngineOptions:
    """Build options from a dict (presets profile, API keywords); unknown keys and wrong types are errors."""
    known = {f.name: f for f in fields(EngineOptions)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown option {unknown[0]!r}; accepted: {', '.join(known)}")
    for name, value in raw.items():
        if name == "dtype":
            if value is not None and value not in DTYPE_NAMES:
                raise InputError(f"{where}: dtype {value!r} is not accepted; accepted: {', '.join(DTYPE_NAMES)} or null")
        elif not isinstance(value, bool):
            raise InputError(f"{where}: {name} must be true or false, got {value!r}")
    return EngineOptions(**raw)
