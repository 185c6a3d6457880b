"""Pre-Norm residual (OneTrans' default; the DeRes paper's reference point): x <- x + f_u(RMSNorm(x)).

The RMSNorm lives inside each unit; the final RMSNorm before the readout lives in the backbone.
"""

import torch

from .base import ResidualRule, keep_last_tokens


class PreNormResidual(ResidualRule):
    """x_{u+1} = x_u + f_u(x_u): every earlier output enters with unit weight."""

    def init(self, x0: torch.Tensor) -> torch.Tensor:
        return x0

    def unit_input(self, state: torch.Tensor, u: int) -> torch.Tensor:
        return state

    def update(self, state: torch.Tensor, u: int, out: torch.Tensor) -> torch.Tensor:
        return state + out

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def shrink(self, state: torch.Tensor, num_tokens: int) -> torch.Tensor:
        return keep_last_tokens(state, num_tokens)

    def current_tokens(self, state: torch.Tensor) -> int:
        return state.shape[1]

    def flops(self, num_tokens: int) -> int:
        return self.num_units * num_tokens * self.d_model                  # one add per unit
