"""The torch.distributed process group of a run started by ``torchrun`` (or by ``launch.run_on_processes``).

torchrun's elastic agent sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each
worker; ``init`` joins the group through them (``env://``): ``gloo`` on CPU, ``nccl`` on GPU with one device per
``LOCAL_RANK``. Every collective has a timeout (``$FUXICTR_DERES_DIST_TIMEOUT`` seconds, default 1800), so a rank
that waits for a dead peer raises instead of hanging; normally the agent tears the group down first.
"""

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, List, Optional

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError

TIMEOUT_ENV = "FUXICTR_DERES_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CONTEXT: Optional[DistContext] = None


def launched_by_torchrun() -> bool:
    """True inside a worker of torchrun / torch.distributed.run (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def timeout_seconds() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"${TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return value


def init(gpu: int = -1) -> Optional[DistContext]:
    """Join the process group when launched by torchrun (None otherwise); ``gpu >= 0`` selects nccl and the GPU
    ``LOCAL_RANK`` (the expid's own GPU index is replaced: one device per process)."""
    global _CONTEXT
    if _CONTEXT is not None or not launched_by_torchrun():
        return _CONTEXT
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if gpu >= 0:
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            raise ConfigError(f"--gpu under torchrun needs one CUDA device per process: LOCAL_RANK={local_rank}, "
                              f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} device(s) visible")
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", torch.device("cuda", local_rank)
    else:
        backend, device = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds()))
    _CONTEXT = DistContext(rank, world_size, local_rank, backend, device)
    logging.info("torch.distributed: rank %d of %d (local rank %d), backend %s, device %s",
                 rank, world_size, local_rank, backend, device)
    return _CONTEXT


def current() -> Optional[DistContext]:
    """The context of this process, None outside a distributed run."""
    return _CONTEXT


def is_main() -> bool:
    """True where results, checkpoints and logs are written: rank 0, or any non-distributed process."""
    return _CONTEXT is None or _CONTEXT.is_main


def shutdown() -> None:
    """Leave the process group (end of a run)."""
    global _CONTEXT
    if _CONTEXT is not None and dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = None


def params_for_rank(params: dict, ctx: Optional[DistContext]) -> dict:
    """The expid's params as this rank trains them: its own GPU, and progress bars on rank 0 only."""
    if ctx is None:
        return params
    out = dict(params)
    if ctx.device.type == "cuda":
        out["gpu"] = ctx.local_rank
    if not ctx.is_main:
        out["verbose"] = 0
    return out


def quiet_other_ranks(ctx: Optional[DistContext]) -> None:
    """Ranks other than 0 log warnings and errors only, to stderr, prefixed with their rank (no log files)."""
    if ctx is None or ctx.is_main:
        return
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"[rank {ctx.rank}] %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def loader_arguments(params: dict, ctx: Optional[DistContext]) -> dict:
    """SeededDataLoader arguments of this rank: ``batch_size`` is the GLOBAL batch, split evenly over the ranks,
    so the same config trains on the same global batches with any number of processes."""
    if ctx is None:
        return {}
    global_batch = int(params["batch_size"])
    if global_batch % ctx.world_size:
        raise ConfigError(f"batch_size={global_batch} is the global batch and must be divisible by the number of "
                          f"processes ({ctx.world_size})")
    return dict(batch_size=global_batch // ctx.world_size, rank=ctx.rank, world_size=ctx.world_size,
                shard_eval=True)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; for small decisions and metric dicts)."""
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.backend == "nccl" else None)
    return box[0]


def gather_arrays(array: np.ndarray, ctx: DistContext) -> Optional[List[np.ndarray]]:
    """Every rank's 1-d ``array`` (lengths may differ by rank) on rank 0, in rank order; None on the others."""
    local = torch.as_tensor(np.ascontiguousarray(array)).to(ctx.device)
    size = torch.tensor([local.numel()], dtype=torch.long, device=ctx.device)
    sizes = [torch.zeros_like(size) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros(longest, dtype=local.dtype, device=ctx.device)
    padded[:local.numel()] = local
    parts = [torch.zeros_like(padded) for _ in range(ctx.world_size)] if ctx.is_main else None
    dist.gather(padded, parts, dst=0)
    if not ctx.is_main:
        return None
    return [p[:int(s)].cpu().numpy() for p, s in zip(parts, sizes)]


def main_first(ctx: Optional[DistContext], step: Callable[[], Any]) -> Any:
    """Run ``step`` on rank 0, then on the other ranks (e.g. preparing a dataset: one writer, the others read it
    once it is there). A dataset that takes longer than the timeout to prepare should be prepared beforehand
    (``fuxictr-deres prepare``)."""
    if ctx is None:
        return step()
    if ctx.is_main:
        out = step()
        dist.barrier()
        return out
    dist.barrier()
    return step()
