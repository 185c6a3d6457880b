"""The residual-rule interface: what each unit reads and how unit outputs accumulate over depth.

Every token backbone runs the same loop (architecture.md); only the rule differs::

    state = rule.init(X0)
    for u, unit in enumerate(units):
        h     = rule.unit_input(state, u)      # what the unit sees
        out   = unit(h)                        # pure: the unit adds no residual itself
        state = rule.update(state, u, out)     # how depth is aggregated
    X_L = rule.readout(state)
"""

from typing import Any, Dict, List, Optional

import torch
from torch import nn


class ResidualRule(nn.Module):
    """Base class of the residual rules.

    Args:
        num_units: U, the number of units (sub-layers, or whole blocks) the rule wires together.
        d_model: token width d.
        num_tokens: T, the token count of X0.
        units_per_layer: how many units form one layer (2 for attention + FFN), for rules that count layers.

    A rule keeps its per-forward state in whatever object ``init`` returns. Backbones that drop tokens (OneTrans'
    pyramid) call ``shrink(state, n)`` before ``update`` when a unit returns only the last n tokens; rules that
    keep earlier states slice them to the surviving tokens.

    ``trace``: set it to a list to make the rule append one dict of depth diagnostics per read (rules that
    read over depth fill it; the others leave it empty).
    """

    #: parameters of the rule are excluded from FuxiCTR's net_regularizer (gates, queries, mixing scalars).
    exclude_from_regularizer = True

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2):
        super().__init__()
        self.num_units, self.d_model, self.num_tokens = num_units, d_model, num_tokens
        self.units_per_layer = units_per_layer
        self.trace: Optional[List[Dict[str, Any]]] = None

    def init(self, x0: torch.Tensor) -> Any:
        raise NotImplementedError

    def unit_input(self, state: Any, u: int) -> torch.Tensor:
        raise NotImplementedError

    def update(self, state: Any, u: int, out: torch.Tensor) -> Any:
        raise NotImplementedError

    def readout(self, state: Any) -> torch.Tensor:
        raise NotImplementedError

    def shrink(self, state: Any, num_tokens: int) -> Any:
        raise NotImplementedError(f"residual rule {type(self).__name__} does not support a shrinking token count")

    def run(self, x0: torch.Tensor, units: List[nn.Module]) -> torch.Tensor:
        """The backbone loop of the module docstring."""
        state = self.init(x0)
        for u, unit in enumerate(units):
            out = unit(self.unit_input(state, u))
            if out.shape[1] != self.current_tokens(state):
                state = self.shrink(state, out.shape[1])
            state = self.update(state, u, out)
        return self.readout(state)

    def current_tokens(self, state: Any) -> int:
        raise NotImplementedError

    #: what ``remove_routing`` does (one line, printed by ``diagnose``); None: the rule has no routing to remove
    routing_removal: Optional[str] = None

    def remove_routing(self) -> None:
        """Put the rule, in place, into its routing-free form (the model then runs the backbone's weights
        through the plain residual); ``diagnostics.routing_removed`` undoes it."""
        raise NotImplementedError(f"residual rule {type(self).__name__} has no routing to remove")

    def reset_to_init(self) -> None:
        """The rule's own parameters back at their (Pre-Norm-equivalent) initialisation; backbone untouched."""
        for module in self.modules():
            if module is not self and hasattr(module, "init_weights"):
                module.init_weights()
        if hasattr(self, "init_weights"):
            self.init_weights()


def keep_last_tokens(x: torch.Tensor, n: int) -> torch.Tensor:
    """Slice (..., T, d) states to their last n tokens (the pyramid keeps the tail queries)."""
    return x[..., x.shape[-2] - n:, :]


class SingleStreamRule(ResidualRule):
    """A rule whose state is one token tensor x (B, T, d) that every unit reads whole; subclasses define only
    ``update`` (Pre-Norm, Post-Norm, the scaled residuals)."""

    def init(self, x0: torch.Tensor) -> torch.Tensor:
        return x0

    def unit_input(self, state: torch.Tensor, u: int) -> torch.Tensor:
        return state

    def readout(self, state: torch.Tensor) -> torch.Tensor:
        return state

    def shrink(self, state: torch.Tensor, num_tokens: int) -> torch.Tensor:
        return keep_last_tokens(state, num_tokens)

    def current_tokens(self, state: torch.Tensor) -> int:
        return state.shape[1]
