"""Run ``fuxictr-deres run`` as one rank of a torchrun job, with checks a test cannot make from outside.

Environment switches (all optional):
  PROBE_GUARD=1            ranks other than 0 raise on any write (open for writing, os.open with a write flag,
                           makedirs) under --model_root
  PROBE_SYNC=1             after every training step, every rank's flattened parameters are gathered and must be
                           bitwise equal; rank 0 prints "PROBE parameters identical after N steps"
  PROBE_FAIL_RANK=r        that rank raises RuntimeError("injected failure on rank r") at its third training step
"""

import builtins
import os
import sys

import torch
import torch.distributed as dist

from fuxictr_deres.cli import main
from fuxictr_deres.distributed import DistributedTraining

RANK = int(os.environ["RANK"])
ARGV = sys.argv[1:]
MODEL_ROOT = os.path.abspath(ARGV[ARGV.index("--model_root") + 1])


def forbid_writes_under_model_root():
    def guard(path, what):
        if os.path.abspath(os.fspath(path)).startswith(MODEL_ROOT):
            raise PermissionError(f"rank {RANK} wrote {path} ({what})")

    real_open, real_os_open, real_makedirs = builtins.open, os.open, os.makedirs

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
            guard(file, f"open {mode}")
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND):
            guard(path, "os.open")
        return real_os_open(path, flags, *args, **kwargs)

    def makedirs(name, *args, **kwargs):
        guard(name, "makedirs")
        return real_makedirs(name, *args, **kwargs)

    builtins.open, os.open, os.makedirs = open_, os_open, makedirs


def patch_train_step(check_sync: bool, fail: bool):
    real = DistributedTraining.train_step
    steps = [0]

    def train_step(self, batch_data):
        steps[0] += 1
        if fail and steps[0] == 3:
            raise RuntimeError(f"injected failure on rank {RANK}")
        loss = real(self, batch_data)
        if check_sync:
            flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
            every = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
            dist.all_gather(every, flat)
            assert all(torch.equal(every[0], other) for other in every), f"parameters differ at step {steps[0]}"
            if RANK == 0:
                print(f"PROBE parameters identical after {steps[0]} steps", flush=True)
        return loss

    DistributedTraining.train_step = train_step


if __name__ == "__main__":
    if os.environ.get("PROBE_GUARD") == "1" and RANK != 0:
        forbid_writes_under_model_root()
    patch_train_step(os.environ.get("PROBE_SYNC") == "1", os.environ.get("PROBE_FAIL_RANK") == str(RANK))
    sys.exit(main(["run", *ARGV]))
