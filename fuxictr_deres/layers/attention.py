"""Multi-head self-attention over tokens as a pure unit: its own Pre-Norm inside, no residual add."""

import torch
import torch.nn.functional as F
from torch import nn

from .. import flops_rules as flop_rules
from .small_softmax import softmax_last_dim
from .token_linear import TokenLinear

ATTENTION_IMPLS = ("auto", "explicit", "sdpa")

#: ``attention_impl: auto`` runs the explicit matmul-softmax-matmul on CPU up to this many tokens and SDPA above it
#: and on CUDA (docs/speed.md: on CPU the flash kernel's tiling costs more than it saves for T <= 16).
EXPLICIT_MAX_TOKENS = 32


class TokenAttention(nn.Module):
    """o = MixedMHA(RMSNorm(h)) (OneTrans, arXiv 2510.26104).

    Q, K, V and O projections are token-specific (``token_specific=True``, OneTrans' mixed parameters) or shared.
    ``causal=True`` is the paper's causal mask over the token order; ``False`` is full attention.
    ``num_queries`` < T keeps only the last queries (OneTrans' pyramid): the output then has fewer tokens and
    the residual rule is told to drop the others.

    The unit runs token-major, (T, B, d): every projection is one ``baddbmm`` over the tokens, and the fused QKV
    projection's output columns are ordered (head, q|k|v, head_dim), so each head's Q, K and V are strided
    (B*H, T, d_head) views that ``bmm`` reads without a copy. ``attention_impl``: ``explicit`` (softmax(Q K^T /
    sqrt(d_h)) V as two bmm), ``sdpa`` (``F.scaled_dot_product_attention``) or ``auto`` (see EXPLICIT_MAX_TOKENS).
    """

    def __init__(self, num_tokens: int, d_model: int, num_heads: int, token_specific: bool = True,
                 causal: bool = False, dropout: float = 0.0, num_queries: int = None, attention_impl: str = "auto"):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={attention_impl!r}; expected one of {list(ATTENTION_IMPLS)}")
        self.num_tokens, self.d_model, self.num_heads = num_tokens, d_model, num_heads
        self.num_queries = num_queries or num_tokens
        self.causal = causal
        self.dropout = dropout
        self.attention_impl = attention_impl
        self.norm = nn.RMSNorm(d_model, eps=1e-6)
        self.qkv = TokenLinear(num_tokens, d_model, 3 * d_model, token_specific)
        self.out = TokenLinear(self.num_queries, d_model, d_model, token_specific)

    def uses_explicit(self, num_tokens: int, device: torch.device) -> bool:
        if self.attention_impl == "auto":
            return device.type == "cpu" and num_tokens <= EXPLICIT_MAX_TOKENS
        return self.attention_impl == "explicit"

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        nh, dh = self.num_heads, d // self.num_heads
        nq = min(self.num_queries, t)
        qkv = self.qkv.forward_token_major(self.norm(h.transpose(0, 1)))          # (T, B, 3d) contiguous
        per_head = qkv.view(t, b * nh, 3, dh)                                   # columns (head, q|k|v, d_head)
        # unbind, not three selects: the selects' backward zero-fills the whole (T, B*H, 3, d_head) gradient three
        # times and sums them; unbind's stacks the three gradients in one pass
        q, k, v = (x.transpose(0, 1) for x in per_head.unbind(2))               # (B*H, T, d_head) views
        q = q[:, t - nq:]
        mask = None
        if self.causal:
            # Query i (the (t-nq+i)-th token) sees tokens 0..t-nq+i: the causal rule, also for a query suffix.
            mask = torch.ones(nq, t, dtype=torch.bool, device=h.device).tril(diagonal=t - nq)
        drop = self.dropout if self.training else 0.0
        if self.uses_explicit(t, h.device):
            scores = torch.baddbmm(q.new_empty(()).expand(b * nh, nq, t), q, k.transpose(1, 2),
                                   beta=0.0, alpha=dh ** -0.5)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = softmax_last_dim(scores)
            if drop > 0:
                weights = F.dropout(weights, drop)
            o = torch.bmm(weights, v)                                            # (B*H, nq, d_head)
        else:
            split = lambda x: x.unflatten(0, (b, nh))                           # (B, H, ., d_head)
            o = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask,
                                               dropout_p=drop).flatten(0, 1)
        ot = o.view(b, nh, nq, dh).permute(2, 0, 1, 3).reshape(nq, b, d)         # (nq, B, d), heads merged
        return self.out.forward_token_major(ot).transpose(0, 1)

    def flops(self, num_tokens: int) -> int:
        t, d, h = num_tokens, self.d_model, self.num_heads
        nq = min(self.num_queries, t)
        scores = flop_rules.matmul(nq, d, t) + 4 * h * nq * t          # QK^T, then scale, exp, sum, divide
        return (flop_rules.rmsnorm(t, d) + self.qkv.flops(t) + scores + flop_rules.matmul(nq, t, d)
                + self.out.flops(nq))
