"""Per-token SwiGLU FFN (TokenMixer-Large's pSwiGLU, arXiv 2602.06563; UniMixer's FFN, arXiv 2604.00590).

    pSwiGLU(x_t) = W_down_t (SiLU(W_gate_t x_t) * (W_up_t x_t))

token-specific (``token_specific=True``) or shared weights, no biases by default. ``down_init_scale`` scales the
down projection's xavier init (TokenMixer-Large: x0.01); TokenLinear re-applies it in ``init_weights`` so it
survives FuxiCTR's ``reset_parameters()``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .. import flops_rules
from .token_linear import TokenLinear


class TokenSwiGLU(nn.Module):
    """(B, T, d_in) -> (B, T, d_in) through a hidden width ``hidden``; no norm inside."""

    def __init__(self, num_tokens: int, d_in: int, hidden: int, token_specific: bool = True, bias: bool = False,
                 down_init_scale: float = 1.0):
        super().__init__()
        self.gate = TokenLinear(num_tokens, d_in, hidden, token_specific, bias)
        self.up = TokenLinear(num_tokens, d_in, hidden, token_specific, bias)
        self.down = TokenLinear(num_tokens, hidden, d_in, token_specific, bias, init_scale=down_init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))

    def flops(self, num_tokens: int) -> int:
        hidden = self.gate.d_out
        return (self.gate.flops(num_tokens) + self.up.flops(num_tokens)
                + flops_rules.elementwise(num_tokens, hidden, 2) + self.down.flops(num_tokens))
