"""SiameseNorm (Li et al., arXiv 2602.08064; UniMixer's residual rule, arXiv 2604.00590): two coupled streams,
one post-norm-like and one pre-norm-like.

    Y~_u = RMSNorm(Ybar_u);  O_u = f_u(Xbar_u + Y~_u)
    Xbar <- RMSNorm(Xbar_u + O_u)          post-norm-like stream
    Ybar <- Ybar_u + O_u                   pre-norm-like accumulation
    output = Xbar_U + RMSNorm(Ybar_U)      both streams start at X0 [ours: the equations leave the start implicit]
"""

from typing import Tuple

import torch
from torch import nn

from .. import flops_rules
from .base import ResidualRule, keep_last_tokens

State = Tuple[torch.Tensor, torch.Tensor]


class SiameseNormResidual(ResidualRule):
    """One RMSNorm per unit on each stream plus a final one on Ybar; all gains 1 at init."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 eps: float = 1e-6):
        super().__init__(num_units, d_model, num_tokens, units_per_layer)
        self.y_norms = nn.ModuleList(nn.RMSNorm(d_model, eps=eps) for _ in range(num_units))
        self.x_norms = nn.ModuleList(nn.RMSNorm(d_model, eps=eps) for _ in range(num_units))
        self.final_norm = nn.RMSNorm(d_model, eps=eps)

    def init_weights(self) -> None:
        """Unit gains (FuxiCTR's reset_parameters leaves norms alone; this restores them)."""
        for norm in [*self.y_norms, *self.x_norms, self.final_norm]:
            norm.reset_parameters()

    def init(self, x0: torch.Tensor) -> State:
        return x0, x0

    def unit_input(self, state: State, u: int) -> torch.Tensor:
        xbar, ybar = state
        return xbar + self.y_norms[u](ybar)

    def update(self, state: State, u: int, out: torch.Tensor) -> State:
        xbar, ybar = state
        return self.x_norms[u](xbar + out), ybar + out

    def readout(self, state: State) -> torch.Tensor:
        xbar, ybar = state
        return xbar + self.final_norm(ybar)

    def shrink(self, state: State, num_tokens: int) -> State:
        return tuple(keep_last_tokens(s, num_tokens) for s in state)

    def current_tokens(self, state: State) -> int:
        return state[0].shape[1]

    def flops(self, num_tokens: int) -> int:
        t, d = num_tokens, self.d_model
        per_unit = 2 * flops_rules.rmsnorm(t, d) + 3 * t * d               # two norms, three adds
        return self.num_units * per_unit + flops_rules.rmsnorm(t, d) + t * d
