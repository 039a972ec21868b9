"""Device, precision and the process group: everything that differs between CPU, one GPU and ``torchrun``.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) each process trains the same model with DDP
on its slice of every global batch: NCCL on CUDA, gloo on CPU. Rank 0 alone writes to the run directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from repeatlab.errors import RepeatlabError
from repeatlab.train.config import TrainConfig


@dataclass(frozen=True)
class World:
    """This process's place among the training processes, and the device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    dtype: torch.dtype
    """Autocast dtype (``torch.bfloat16``), or ``torch.float32`` for no autocast."""

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and reports progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Mixed-precision context for forward passes (a no-op in float32)."""
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        """Sum a few floats over processes (float64, so results do not depend on reduction order much)."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


def resolve_device(config: TrainConfig, local_rank: int = 0) -> torch.device:
    """The device the config asks for; ``cuda`` without a GPU is a clear error."""
    want = config.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise RepeatlabError("train.device is 'cuda' but no CUDA GPU is available; use device='cpu' or 'auto'")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def resolve_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 autocast on CUDA, float32 on CPU, unless the config says otherwise."""
    if config.precision == "fp32":
        return torch.float32
    if config.precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise RepeatlabError("train.precision is 'bf16' but this GPU does not support bfloat16; use 'fp32'")
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def launch_rank() -> int:
    """This process's rank as ``torchrun`` set it (0 when not launched by it), known before ``world``."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def world(config: TrainConfig) -> Iterator[World]:
    """Set up the process group when launched by ``torchrun`` and always tear it down."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = launch_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # TF32 matmuls for any float32 work left outside autocast (e.g. the fp32 optimizer step).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        # Denormal floats can slow CPU training many times over; flushing them changes nothing visible.
        torch.set_flush_denormal(True)
    threads = torch.get_num_threads()
    if config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    started = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        started = True
    try:
        yield World(rank, world_size, local_rank, device, resolve_dtype(config, device))
    finally:
        torch.set_num_threads(threads)
        if started:
            dist.destroy_process_group()
