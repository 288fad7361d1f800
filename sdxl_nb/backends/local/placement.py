"""Where work runs: the visible GPUs (for replicas) and this process's rank and device under accelerate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sdxl_nb import settings


def visible_devices() -> list[str]:
    """Every CUDA device this process can see ("cuda:0", "cuda:1", ...); empty without CUDA."""
    if not torch.cuda.is_available():
        return []
    return [f"cuda:{index}" for index in range(torch.cuda.device_count())]


@dataclass(frozen=True)
class ProcessPlacement:
    rank: int
    world_size: int
    device: str

    def record(self) -> dict:
        return {"rank": self.rank, "world_size": self.world_size, "device": self.device}


class Processes:
    """The processes `accelerate launch` (or torchrun) started: split work, wait, gather results.

    On a machine without CUDA (or with SDXL_NB_DEVICE=cpu) the processes talk over gloo on the CPU;
    with CUDA each process gets its own GPU (cuda:<local rank>) and accelerate makes it current.
    """

    def __init__(self):
        from accelerate import PartialState

        use_cpu = (settings.device() or "").startswith("cpu") or not torch.cuda.is_available()
        self._state = PartialState(cpu=use_cpu)
        device = self._state.device
        name = "cpu" if device.type == "cpu" else str(device)
        self.placement = ProcessPlacement(rank=self._state.process_index, world_size=self._state.num_processes,
                                          device=name)

    @property
    def is_main(self) -> bool:
        return self._state.is_main_process

    def split(self, items: Sequence) -> list:
        """This process's share of items: contiguous, sizes differ by at most one, nothing twice."""
        with self._state.split_between_processes(list(items)) as share:
            return list(share)

    def wait(self) -> None:
        self._state.wait_for_everyone()

    def gather(self, items: list) -> list:
        """Every process's items, concatenated in rank order (on every process)."""
        if self.placement.world_size == 1:
            return list(items)
        from accelerate.utils import gather_object

        return list(gather_object(list(items)))
