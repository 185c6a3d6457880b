"""RankMixer (Zhu et al., CIKM'25, arXiv 2507.15551): Post-LayerNorm blocks of parameter-free token mixing and a
token-specific FFN, on Chunk tokens.

    S = LN(TokenMixing(X) + X)        H = T heads: mixed token h gathers piece h (width d/H) of every token
    X = LN(PFFN(S) + S)               PFFN(s_t) = W2_t GELU(W1_t s_t + b1_t) + b2_t
    readout: mean over tokens

Params about 2 k L T d^2, FLOPs about 4 k L T d^2.
"""

from typing import List, Tuple

import torch
from torch import nn

from .. import flops_rules
from ..layers import TokenLinear
from ..layers.mixing import TokenMixing
from .token_ctr import TokenCTR

GRANULARITIES = ("block", "sublayer")


class PerTokenFFN(nn.Module):
    """PFFN(s_t) = W2_t GELU(W1_t s_t + b1_t) + b2_t, token-specific, no norm inside (RankMixer's FFN)."""

    def __init__(self, num_tokens: int, d_model: int, ffn_ratio: float, dropout: float = 0.0):
        super().__init__()
        hidden = int(round(d_model * ffn_ratio))
        self.up = TokenLinear(num_tokens, d_model, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.down = TokenLinear(num_tokens, hidden, d_model)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.down(self.drop(self.act(self.up(s))))

    def flops(self, num_tokens: int) -> int:
        return (self.up.flops(num_tokens) + flops_rules.elementwise(num_tokens, self.up.d_out)
                + self.down.flops(num_tokens))


class TokenMixingUnit(nn.Module):
    """f(X) = TokenMixing(X) with H = T, as a unit of its own (``granularity: sublayer``)."""

    def __init__(self, num_tokens: int, d_model: int):
        super().__init__()
        self.mixing = TokenMixing(num_tokens, d_model, num_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixing(x)

    def flops(self, num_tokens: int) -> int:
        return 0


class RankMixerBlock(nn.Module):
    """One RankMixer block as one unit: f(X) = S + PFFN(S) - X with S = LN(TokenMixing(X) + X).

    The unit returns the block's update relative to its input, so the block-level residual is the rule's:
    with ``residual: postnorm`` the rule computes LN(X + f(X)) = LN(PFFN(S) + S), the paper's block exactly;
    any other rule replaces that outer add-and-norm while S stays inside the unit.
    """

    def __init__(self, num_tokens: int, d_model: int, ffn_ratio: float, dropout: float = 0.0, eps: float = 1e-5):
        super().__init__()
        self.mixing = TokenMixing(num_tokens, d_model, num_tokens)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.ffn = PerTokenFFN(num_tokens, d_model, ffn_ratio, dropout)

    def init_weights(self) -> None:
        self.norm.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.norm(self.mixing(x) + x)
        return s + self.ffn(s) - x

    def flops(self, num_tokens: int) -> int:
        t, d = num_tokens, self.norm.normalized_shape[0]
        return flops_rules.layernorm(t, d) + self.ffn.flops(t) + flops_rules.elementwise(t, d, 3)


class RankMixer(TokenCTR):
    """RankMixer on the shared token backbone; ``residual: postnorm`` (default) is the paper's.

    Options: ``granularity: block`` (default; one unit per layer, the swappable residual is the block-level one)
    or ``sublayer`` (mixing and FFN are separate units: with postnorm also exactly the paper). The defaults put
    Chunk tokens in, no final norm (the last post-norm already normalises) and mean readout.
    """

    default_residual = "postnorm"

    def __init__(self, feature_map, model_id: str = "RankMixer", tokenizer: str = "chunk",
                 final_norm: bool = False, readout: str = "mean", granularity: str = "block", **kwargs):
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity={granularity!r}; expected one of {list(GRANULARITIES)}")
        super().__init__(feature_map, model_id=model_id, tokenizer=tokenizer, final_norm=final_norm,
                         readout=readout, granularity=granularity, **kwargs)

    def build_units(self, num_tokens: int, d_model: int, num_layers: int, ffn_ratio: float, net_dropout: float,
                    granularity: str = "block", **kwargs) -> Tuple[List[nn.Module], int, int]:
        if d_model % num_tokens != 0:
            raise ValueError(f"RankMixer mixes with H = num_tokens heads of width d_model / num_tokens: d_model="
                             f"{d_model} must be divisible by num_tokens={num_tokens}")
        if granularity == "sublayer":
            units = []
            for _ in range(num_layers):
                units += [TokenMixingUnit(num_tokens, d_model),
                          PerTokenFFN(num_tokens, d_model, ffn_ratio, net_dropout)]
            return units, 2, num_tokens
        return [RankMixerBlock(num_tokens, d_model, ffn_ratio, net_dropout) for _ in range(num_layers)], 1, num_tokens
