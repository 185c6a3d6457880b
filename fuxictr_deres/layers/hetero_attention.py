"""Hiformer's composite attention (Gui et al., KDD'23, arXiv 2311.05884, Section 4) as a pure unit with its own
Pre-Norm. ``composite: kv`` (default, the paper's Hiformer layer):

    hn = RMSNorm(h);  c = concat(hn_1..hn_T)
    Q_i = hn_i W_Q_i                                     heterogeneous (token-specific) queries
    [K_1..K_T] = c U_K V_K,  [V_1..V_T] = c U_V V_V      low-rank factorised (T d x r)(r x T d) composite keys, values
    o_i = MHA(Q, K, V)_i W_O_i                           token-specific output projection

``composite: qk`` (this project's earlier form, kept as an option): composite Q and K, token-specific V_j.

The plain heterogeneous attention (token-specific Q_i, K_j, V_j, O) is ``TokenAttention(token_specific=True)``.
``num_queries`` < T computes only the last queries (Hiformer's task token in the last layer).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .. import flops_rules
from .token_linear import TokenLinear


class CompositeAttention(nn.Module):
    """(B, T, d) -> (B, num_queries, d); needs the full T input tokens (the composite map reads them all)."""

    def __init__(self, num_tokens: int, d_model: int, num_heads: int, rank: int, dropout: float = 0.0,
                 num_queries: int = None, composite: str = "kv"):
        super().__init__()
        if composite not in ("kv", "qk"):
            raise ValueError(f"hiformer composite={composite!r}; expected 'kv' (the paper) or 'qk'")
        self.composite = composite
        if d_model % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
        if rank < 1:
            raise ValueError(f"composite_rank={rank}: expected a positive integer")
        self.num_tokens, self.d_model, self.num_heads, self.rank = num_tokens, d_model, num_heads, rank
        self.num_queries = num_queries or num_tokens
        self.dropout = dropout
        width = num_tokens * d_model
        self.norm = nn.RMSNorm(d_model, eps=1e-6)
        self.k_down, self.k_up = nn.Linear(width, rank, bias=False), nn.Linear(rank, width, bias=False)
        if composite == "kv":
            self.query = TokenLinear(self.num_queries, d_model, d_model)
            self.v_down, self.v_up = nn.Linear(width, rank, bias=False), nn.Linear(rank, width, bias=False)
        else:
            self.q_down, self.q_up = nn.Linear(width, rank, bias=False), nn.Linear(rank, width, bias=False)
            self.value = TokenLinear(num_tokens, d_model, d_model)
        self.out = TokenLinear(self.num_queries, d_model, d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        if t != self.num_tokens:
            raise ValueError(f"composite attention was built for {self.num_tokens} tokens, got {t}")
        hn = self.norm(h)
        flat = hn.flatten(start_dim=1)
        nq = self.num_queries
        k = self.k_up(self.k_down(flat)).view(b, t, d)
        if self.composite == "kv":
            q = self.query(hn[:, t - nq:])
            v = self.v_up(self.v_down(flat)).view(b, t, d)
        else:
            q = F.linear(self.q_down(flat), self.q_up.weight[(t - nq) * d:]).view(b, nq, d)
            v = self.value(hn)
        heads = lambda x: x.reshape(b, x.shape[1], self.num_heads, d // self.num_heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(o.transpose(1, 2).reshape(b, nq, d))

    def flops(self, num_tokens: int) -> int:
        t, d, r, nq = num_tokens, self.d_model, self.rank, self.num_queries
        if self.composite == "kv":
            projections = (flops_rules.matmul(1, t * d, r) * 2 + flops_rules.matmul(1, r, t * d) * 2
                           + self.query.flops(nq))
        else:
            projections = (flops_rules.matmul(1, t * d, r) * 2 + flops_rules.matmul(1, r, nq * d)
                           + flops_rules.matmul(1, r, t * d) + self.value.flops(t))
        scores = flops_rules.matmul(nq, d, t) + 4 * self.num_heads * nq * t
        return (flops_rules.rmsnorm(t, d) + projections + scores + flops_rules.matmul(nq, t, d)
                + self.out.flops(nq))
