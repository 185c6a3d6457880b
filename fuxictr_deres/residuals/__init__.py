"""Residual rules, chosen by name in a model config (``residual: deres``, ``residual_params: {...}``)."""

import inspect
from typing import Dict, Optional, Type

from .attnres import AttnResBlockResidual, AttnResFullResidual
from .base import ResidualRule
from .denseformer import DenseFormerResidual
from .deres import DeResResidual
from .hyper_connections import HyperConnectionsResidual
from .mhc import MHCResidual
from .postnorm import PostNormResidual
from .prenorm import PreNormResidual
from .scaled_residual import LayerScaleResidual, LearnableResidual, ReZeroResidual, ScaledResidual  # noqa: F401
from .siamese import SiameseNormResidual

RESIDUAL_RULES: Dict[str, Type[ResidualRule]] = {
    "prenorm": PreNormResidual,
    "postnorm": PostNormResidual,
    "learnable": LearnableResidual,
    "rezero": ReZeroResidual,
    "layerscale": LayerScaleResidual,
    "denseformer": DenseFormerResidual,
    "hc": HyperConnectionsResidual,
    "mhc": MHCResidual,
    "attnres_full": AttnResFullResidual,
    "attnres_block": AttnResBlockResidual,
    "siamese": SiameseNormResidual,
    "deres": DeResResidual,
}

_STRUCTURAL_ARGS = ("self", "num_units", "d_model", "num_tokens", "units_per_layer")


def register_residual_rule(name: str, rule_class: Type[ResidualRule]) -> Type[ResidualRule]:
    """Make ``rule_class`` available as ``residual: <name>``."""
    RESIDUAL_RULES[name] = rule_class
    return rule_class


def residual_rule_options(name: str) -> Dict[str, object]:
    """The options a rule accepts in ``residual_params``, with their defaults."""
    signature = inspect.signature(RESIDUAL_RULES[name].__init__)
    return {k: p.default for k, p in signature.parameters.items()
            if k not in _STRUCTURAL_ARGS and p.kind is p.POSITIONAL_OR_KEYWORD}


def build_residual_rule(name: str, residual_params: Optional[dict], num_units: int, d_model: int,
                        num_tokens: int, units_per_layer: int = 2) -> ResidualRule:
    """Build the rule ``name`` for U units of width d over T tokens; unknown names or options are errors."""
    if name not in RESIDUAL_RULES:
        raise ValueError(f"unknown residual={name!r}; expected one of {sorted(RESIDUAL_RULES)}")
    params = dict(residual_params or {})
    allowed = residual_rule_options(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"residual_params for residual={name!r} has unknown option(s) {unknown}; "
                         f"allowed: {sorted(allowed)}")
    return RESIDUAL_RULES[name](num_units, d_model, num_tokens, units_per_layer=units_per_layer, **params)


__all__ = ["ResidualRule", "RESIDUAL_RULES", "register_residual_rule", "build_residual_rule",
           "residual_rule_options"] + sorted({cls.__name__ for cls in RESIDUAL_RULES.values()} | {"ScaledResidual"})
