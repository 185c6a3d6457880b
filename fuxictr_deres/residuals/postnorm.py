"""Post-Norm residual (the original Transformer's; RankMixer's rule): x <- Norm(x + f_u(x)).

Each unit gets its own norm (LayerNorm by default, as in RankMixer; ``norm: rmsnorm`` as an option). Post-Norm
keeps the state's scale fixed over depth but puts a norm on the identity path, so the gradient has no clean
identity route at depth. The backbone's final norm after the last unit is then redundant but harmless.
"""

import torch
from torch import nn

from .. import flops_rules
from .base import SingleStreamRule

POSTNORM_NORMS = ("layernorm", "rmsnorm")


class PostNormResidual(SingleStreamRule):
    """x_{u+1} = Norm_u(x_u + f_u(x_u)), one norm per unit with gain 1 (and bias 0) at init."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 norm: str = "layernorm", eps: float = 1e-5):
        super().__init__(num_units, d_model, num_tokens, units_per_layer)
        if norm not in POSTNORM_NORMS:
            raise ValueError(f"residual_params.norm={norm!r}; expected one of {list(POSTNORM_NORMS)}")
        self.norm_kind = norm
        make = (lambda: nn.LayerNorm(d_model, eps=eps)) if norm == "layernorm" else \
            (lambda: nn.RMSNorm(d_model, eps=eps))
        self.norms = nn.ModuleList(make() for _ in range(num_units))

    def init_weights(self) -> None:
        """Unit gains and zero biases (FuxiCTR's reset_parameters leaves norms alone; this restores them)."""
        for norm in self.norms:
            norm.reset_parameters()

    def update(self, state: torch.Tensor, u: int, out: torch.Tensor) -> torch.Tensor:
        return self.norms[u](state + out)

    def flops(self, num_tokens: int) -> int:
        t, d = num_tokens, self.d_model
        norm = flops_rules.layernorm(t, d) if self.norm_kind == "layernorm" else flops_rules.rmsnorm(t, d)
        return self.num_units * (t * d + norm)                             # the add, then the norm
