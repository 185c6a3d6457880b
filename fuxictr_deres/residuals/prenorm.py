"""Pre-Norm residual (OneTrans' default; the DeRes paper's reference point): x <- x + f_u(RMSNorm(x)).

The RMSNorm lives inside each unit; the final RMSNorm before the readout lives in the backbone.
"""

import torch

from .base import SingleStreamRule


class PreNormResidual(SingleStreamRule):
    """x_{u+1} = x_u + f_u(x_u): every earlier output enters with unit weight."""

    def update(self, state: torch.Tensor, u: int, out: torch.Tensor) -> torch.Tensor:
        return state + out

    def flops(self, num_tokens: int) -> int:
        return self.num_units * num_tokens * self.d_model                  # one add per unit
