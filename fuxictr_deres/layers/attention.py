"""Multi-head self-attention over tokens as a pure unit: its own Pre-Norm inside, no residual add."""

import torch
import torch.nn.functional as F
from torch import nn

from .. import flops_rules as flop_rules
from .token_linear import TokenLinear


class TokenAttention(nn.Module):
    """o = MixedMHA(RMSNorm(h)) (OneTrans, arXiv 2510.26104).

    Q, K, V and O projections are token-specific (``token_specific=True``, OneTrans' mixed parameters) or shared.
    ``causal=True`` is the paper's causal mask over the token order; ``False`` is full attention.
    ``num_queries`` < T keeps only the last queries (OneTrans' pyramid): the output then has fewer tokens and
    the residual rule is told to drop the others.
    """

    def __init__(self, num_tokens: int, d_model: int, num_heads: int, token_specific: bool = True,
                 causal: bool = False, dropout: float = 0.0, num_queries: int = None):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
        self.num_tokens, self.d_model, self.num_heads = num_tokens, d_model, num_heads
        self.num_queries = num_queries or num_tokens
        self.causal = causal
        self.dropout = dropout
        self.norm = nn.RMSNorm(d_model, eps=1e-6)
        self.qkv = TokenLinear(num_tokens, d_model, 3 * d_model, token_specific)
        self.out = TokenLinear(self.num_queries, d_model, d_model, token_specific)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(self.norm(h)).chunk(3, dim=-1)
        nq = min(self.num_queries, t)
        q = q[:, t - nq:]
        heads = lambda x: x.reshape(b, x.shape[1], self.num_heads, d // self.num_heads).transpose(1, 2)
        mask = None
        if self.causal and nq != t:
            # Query i (the (t-nq+i)-th token) sees tokens 0..t-nq+i, the causal rule for a query suffix.
            mask = torch.ones(nq, t, dtype=torch.bool, device=h.device).tril(diagonal=t - nq)
        o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=self.causal and nq == t)
        return self.out(o.transpose(1, 2).reshape(b, nq, d))

    def flops(self, num_tokens: int) -> int:
        t, d, h = num_tokens, self.d_model, self.num_heads
        nq = min(self.num_queries, t)
        scores = flop_rules.matmul(nq, d, t) + 4 * h * nq * t          # QK^T, then scale, exp, sum, divide
        return (flop_rules.rmsnorm(t, d) + self.qkv.flops(t) + scores + flop_rules.matmul(nq, t, d)
                + self.out.flops(nq))
