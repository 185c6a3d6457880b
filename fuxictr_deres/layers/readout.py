"""Readout: final token states (B, T, d) -> one vector per sample for the prediction head."""

import torch
from torch import nn

READOUTS = ("mean", "flatten", "last")


class Readout(nn.Module):
    """``mean`` pools over tokens (default), ``flatten`` concatenates them, ``last`` keeps the last token."""

    def __init__(self, mode: str, num_tokens: int, d_model: int):
        super().__init__()
        if mode not in READOUTS:
            raise ValueError(f"unknown readout={mode!r}; expected one of {list(READOUTS)}")
        self.mode = mode
        self.output_dim = num_tokens * d_model if mode == "flatten" else d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            return x.mean(dim=1)
        if self.mode == "last":
            return x[:, -1]
        return x.flatten(start_dim=1)
