"""Per-token feed-forward network as a pure unit: its own Pre-Norm inside, no residual add."""

import torch
from torch import nn

from .. import flops_rules as flop_rules
from .token_linear import TokenLinear

ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "relu": nn.ReLU, "silu": nn.SiLU}


class TokenFFN(nn.Module):
    """o = MixedFFN(RMSNorm(h)), MixedFFN(x_t) = W2_t act(W1_t x_t + b1_t) + b2_t (OneTrans, arXiv 2510.26104).

    Runs token-major (T, B, d) like TokenAttention. ``activation``: gelu (exact, erf; the default), gelu_tanh,
    silu (about half GELU's time on CPU, docs/speed.md) or relu.
    """

    def __init__(self, num_tokens: int, d_model: int, ffn_ratio: float = 4, token_specific: bool = True,
                 activation: str = "gelu", dropout: float = 0.0):
        super().__init__()
        if activation.lower() not in ACTIVATIONS:
            raise ValueError(f"unknown ffn activation={activation!r}; expected one of {sorted(ACTIVATIONS)}")
        hidden = int(round(d_model * ffn_ratio))
        self.norm = nn.RMSNorm(d_model, eps=1e-6)
        self.up = TokenLinear(num_tokens, d_model, hidden, token_specific)
        self.act = ACTIVATIONS[activation.lower()]()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.down = TokenLinear(num_tokens, hidden, d_model, token_specific)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        xt = self.norm(h.transpose(0, 1))
        return self.down.forward_token_major(self.drop(self.act(self.up.forward_token_major(xt)))).transpose(0, 1)

    def flops(self, num_tokens: int) -> int:
        d, hidden = self.up.d_in, self.up.d_out
        return (flop_rules.rmsnorm(num_tokens, d) + self.up.flops(num_tokens)
                + flop_rules.elementwise(num_tokens, hidden) + self.down.flops(num_tokens))
