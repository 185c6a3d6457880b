"""Scaled residuals, one parametrised family (specs/residual_rules.md, ablation references):

    learnable : x <- lambda_u * x + f_u(x)        lambda_u in R^d, init 1      (DeRes' "learnable residual" ablation)
    rezero    : x <- x + alpha_u * f_u(x)         alpha_u scalar, init 0       (Bachlechner et al., arXiv 2003.04887)
    layerscale: x <- x + diag(l_u) f_u(x)         l_u in R^d, small init 1e-4  (Touvron et al., CaiT, arXiv 2103.17239)

The units keep their own pre-norm inside (the papers' ReZero drops the norm; here only the residual differs).
The scales are raw ``nn.Parameter``s restored by ``init_weights``, so they survive FuxiCTR's reset_parameters().
"""

import torch
from torch import nn

from .base import SingleStreamRule

SCALE_TARGETS = ("identity", "branch")


class ScaledResidual(SingleStreamRule):
    """x <- s_u * x + f_u(x) (``target=identity``) or x <- x + s_u * f_u(x) (``target=branch``), with s_u a
    per-dimension vector (``vector=True``) or a scalar, initialised to ``init``."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 target: str = "branch", vector: bool = True, init: float = 1.0):
        super().__init__(num_units, d_model, num_tokens, units_per_layer)
        if target not in SCALE_TARGETS:
            raise ValueError(f"residual_params.target={target!r}; expected one of {list(SCALE_TARGETS)}")
        self.target, self.vector, self.init_value = target, bool(vector), float(init)
        self.scale = nn.Parameter(torch.empty(num_units, d_model if self.vector else 1))
        self.init_weights()

    def init_weights(self) -> None:
        with torch.no_grad():
            self.scale.fill_(self.init_value)

    def update(self, state: torch.Tensor, u: int, out: torch.Tensor) -> torch.Tensor:
        if self.target == "identity":
            return self.scale[u] * state + out
        return state + self.scale[u] * out

    def flops(self, num_tokens: int) -> int:
        return self.num_units * 2 * num_tokens * self.d_model              # one scale, one add per unit


class LearnableResidual(ScaledResidual):
    """``residual: learnable``: x <- lambda_u * x + f_u(x), lambda_u in R^d init 1 (= Pre-Norm at init)."""

    routing_removal = "lambda back at its init (1 by default: the Pre-Norm residual)"

    def remove_routing(self) -> None:
        self.reset_to_init()

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 init: float = 1.0):
        super().__init__(num_units, d_model, num_tokens, units_per_layer, target="identity", vector=True, init=init)


class ReZeroResidual(ScaledResidual):
    """``residual: rezero``: x <- x + alpha_u f_u(x), alpha_u scalar init 0 (every unit starts switched off)."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 init: float = 0.0):
        super().__init__(num_units, d_model, num_tokens, units_per_layer, target="branch", vector=False, init=init)


class LayerScaleResidual(ScaledResidual):
    """``residual: layerscale``: x <- x + diag(l_u) f_u(x), l_u in R^d, small init (1e-4 by default)."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 init: float = 1e-4):
        super().__init__(num_units, d_model, num_tokens, units_per_layer, target="branch", vector=True, init=init)
