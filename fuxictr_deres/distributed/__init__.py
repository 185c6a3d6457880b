"""Data-parallel training on torch.distributed: torchrun + DistributedDataParallel around FuxiCTR's loop."""

from .ddp_training import DistributedTraining, interleave
from .process_group import (DistContext, current, init, is_main, launched_by_torchrun, loader_arguments,
                            main_first, params_for_rank, quiet_other_ranks, shutdown)

__all__ = ["DistContext", "DistributedTraining", "current", "init", "interleave", "is_main", "launched_by_torchrun",
           "loader_arguments", "main_first", "params_for_rank", "quiet_other_ranks", "shutdown"]
