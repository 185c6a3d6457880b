"""DenseFormer (Pagliardini et al., arXiv 2402.02622): Depth-Weighted Averaging (DWA) after every block.

    X_0 = embedding;  X_i = Block_i(Y_{i-1})  (the block's units with their ordinary Pre-Norm residual inside)
    Y_i = sum_{j=0..i} a_ij X_j                 a static learned scalars, init a_ii = 1, else 0

At init Y_i = X_i, so the model is exactly the standard (Pre-Norm) Transformer; there are N(N+3)/2 scalars for N
blocks. A "block" is one layer (``units_per_layer`` units) by default; ``per_unit: true`` puts a DWA after every
unit. The paper's dilation/period variants (DenseFormer k x p) are not implemented: k = p = 1 here.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import ResidualRule, keep_last_tokens


@dataclass
class DenseFormerState:
    outputs: torch.Tensor     # (i + 1, B, T, d): X_0, ..., X_i
    x: torch.Tensor           # the running state inside the current block (B, T, d)
    block: int = 0            # completed blocks i
    units_in_block: int = 0


class DenseFormerResidual(ResidualRule):
    """Pre-Norm residual inside each block; a DWA over all earlier block outputs after each block."""

    routing_removal = "DWA weights at their init (a_ii = 1, others 0): the standard Pre-Norm Transformer"

    def remove_routing(self) -> None:
        self.reset_to_init()

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 per_unit: bool = False):
        super().__init__(num_units, d_model, num_tokens, units_per_layer)
        self.block_units = 1 if per_unit else units_per_layer
        self.num_blocks = math.ceil(num_units / self.block_units)      # a last shorter block gets its DWA too
        # row i-1 holds the i + 1 weights a_{i, 0..i} of the DWA after block i; entries j > i are never used
        self.dwa = nn.Parameter(torch.zeros(self.num_blocks, self.num_blocks + 1))
        self.init_weights()

    def init_weights(self) -> None:
        """a_ii = 1, all others 0: the standard Transformer."""
        with torch.no_grad():
            self.dwa.zero_()
            idx = torch.arange(self.num_blocks)
            self.dwa[idx, idx + 1] = 1.0

    def dwa_weights(self, i: int) -> torch.Tensor:
        """The i + 1 weights a_{i, 0..i} of the DWA after block i (1-based)."""
        return self.dwa[i - 1, :i + 1]

    def init(self, x0: torch.Tensor) -> DenseFormerState:
        return DenseFormerState(x0.unsqueeze(0), x0)

    def unit_input(self, state: DenseFormerState, u: int) -> torch.Tensor:
        return state.x

    def update(self, state: DenseFormerState, u: int, out: torch.Tensor) -> DenseFormerState:
        x = state.x + out
        count = state.units_in_block + 1
        if count < self.block_units and u + 1 < self.num_units:
            return DenseFormerState(state.outputs, x, state.block, count)
        i = state.block + 1
        outputs = torch.cat([state.outputs, x.unsqueeze(0)], dim=0)
        a = self.dwa_weights(i)
        y = torch.einsum("m,mbtd->btd", a.to(outputs.dtype), outputs)
        if self.trace is not None:
            with torch.no_grad():
                self.trace.append({"read": i, "num_sources": i + 1, "alpha_mean": a.detach().float().cpu().clone(),
                                   "alpha_std": torch.zeros(i + 1)})
        return DenseFormerState(outputs, y, i, 0)

    def readout(self, state: DenseFormerState) -> torch.Tensor:
        return state.x

    def shrink(self, state: DenseFormerState, num_tokens: int) -> DenseFormerState:
        return DenseFormerState(keep_last_tokens(state.outputs, num_tokens), keep_last_tokens(state.x, num_tokens),
                                state.block, state.units_in_block)

    def current_tokens(self, state: DenseFormerState) -> int:
        return state.x.shape[1]

    def flops(self, num_tokens: int) -> int:
        """The Pre-Norm adds, plus per DWA after block i a weighted sum of i + 1 sources (2 (i + 1) - 1 per
        element)."""
        t, d = num_tokens, self.d_model
        dwa = sum((2 * (i + 1) - 1) * t * d for i in range(1, self.num_blocks + 1))
        return self.num_units * t * d + dwa
