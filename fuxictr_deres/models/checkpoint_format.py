"""The layout version every token-model checkpoint carries, so a checkpoint of another layout fails loudly.

A change of parameter layout that keeps the tensor shapes (commit 9105d01 reordered the fused Q/K/V columns
head-major) loads without error and silently computes another model. TokenCTR therefore stores
``CHECKPOINT_FORMAT`` as a persistent buffer ``checkpoint_format`` in its ``state_dict``; loading refuses another
version and warns about a checkpoint that carries none (written before this guard existed).

Bump ``CHECKPOINT_FORMAT`` with every change that alters what stored tensors mean.
"""

import logging
from typing import Mapping

import torch

# 1: before 9105d01 (Q/K/V columns qkv-major); 2: token-major layout, Q/K/V columns head-major
CHECKPOINT_FORMAT = 2
FORMAT_KEY = "checkpoint_format"


class CheckpointFormatError(ValueError):
    """A checkpoint was written by a revision with another parameter layout."""


def format_buffer() -> torch.Tensor:
    """The buffer TokenCTR registers under ``FORMAT_KEY``."""
    return torch.tensor(CHECKPOINT_FORMAT, dtype=torch.int64)


def check_checkpoint_format(state_dict: Mapping[str, torch.Tensor], path: str) -> None:
    """Raise ``CheckpointFormatError`` when ``state_dict`` (read from ``path``) has another layout version; warn
    when it has none."""
    if FORMAT_KEY not in state_dict:
        logging.warning(f"checkpoint {path} carries no layout version ({FORMAT_KEY}): it was written before the "
                        f"format guard. A checkpoint trained before commit 9105d01 loads but computes another "
                        f"model (its Q/K/V columns are in the old order): retrain it if in doubt.")
        return
    found = int(state_dict[FORMAT_KEY])
    if found != CHECKPOINT_FORMAT:
        raise CheckpointFormatError(f"checkpoint {path}: layout version {found}, this code reads version "
                                    f"{CHECKPOINT_FORMAT} (see fuxictr_deres/models/checkpoint_format.py); "
                                    f"retrain it or load it with the revision that wrote it")
