"""Attention over depth: the reads of one rule over stored block summaries (Attention Residuals,
arXiv 2603.15031; Pointwise AttnRes of DeRes, arXiv 2606.07980).

Read r over sources s_1..s_M:

    z_j   = tau * <w_r, RMSNorm_r(s_j)> + beta_{r,j}  keys are RMS-normalised sources, values the raw sources
    alpha = SiLU(z) | sigmoid(z) | softmax_j(z)       SiLU/sigmoid: no normalisation across sources
    a     = sum_j alpha_j s_j

One bias per (read, source): a single per-read bias beta_r adds silu(beta_r) * sum_j s_j, which at w = 0 is a
multiple of the identity stream y = sum_j s_j, so the next (scale-invariant) RMSNorm cancels it and beta_r gets no
gradient (measured ~1e-8). Per-source biases weigh the sources unequally and do learn. ``recency_prior`` c sets
beta_{r,j} = beta + c * (j - (M_r - 1)) at init (the newest source keeps beta, each older one c less); c = 0 (the
default) keeps invariant 2 of specs/deres.md (alpha = 0 at w = 0, beta = 0 with SiLU).

Three choices keep this cheap on memory-bound hardware (it is ~3% of the FLOPs but touches every stored block):
- the RMSNorm gain folds into the query: <w, g * s / rms(s)> = <w * g, s> / rms(s), so keys are never built;
- a block is scored for every later read at once, when it closes: one (B*T, d) @ (d, R') GEMM, instead of one
  pass over all stored blocks per read;
- blocks are kept as separate (B, T, d) tensors (never re-stacked when a block closes, which copied every stored
  block again), and the weighted sum is ``DepthWeightedSum``: one streaming multiply-add pass per source forward,
  and a closed-form backward (grad s_j = alpha_j * grad a, grad alpha_j = <grad a, s_j>) instead of B*T tiny
  (1 x M) @ (M x d) batched matmuls and their autograd graph (docs/speed.md);
- the normalised score is ``NormalisedScore``, one function with a closed-form backward, instead of autograd
  through pow / mean / rsqrt / matmul (four (B, T, d) temporaries per score).
The math runs in float32 even under autocast.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.small_softmax import softmax_last_dim

SCORE_FNS = ("silu", "sigmoid", "softmax")

#: SiLU(z) = 1 and SiLU'(z) = 1 at z = 1.2785: the attention-only path starts as a copy of its sources' sum.
SILU_UNIT_POINT = 1.2785


def inverse_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(x^2) + eps) over the last dimension."""
    return torch.rsqrt(x.float().pow(2).mean(dim=-1) + eps)


class NormalisedScore(torch.autograd.Function):
    """z[..., r] = tau * <q_r, x> * rho(x), rho(x) = 1 / sqrt(mean(x^2) + eps), for x (..., d) and queries q (R, d),
    with the closed-form backward

        grad x = (tau rho gz) @ q - (tau rho^3 / d) <gz, dots> x,    grad q = (tau rho gz)^T x.

    Written by hand because autograd of ``x.pow(2).mean()`` and ``x @ q.t()`` allocates four (..., d) temporaries
    per score (pow, its backward's two products, the mean's expand) and runs the R = 1 backward as an outer-product
    GEMM with K = 1; here the forward reads x twice (``vector_norm``, the GEMM) and the backward writes grad x once."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q: torch.Tensor, tau: float, eps: float) -> torch.Tensor:
        d = x.shape[-1]
        rho = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(d).add_(eps).rsqrt_()   # (..., 1)
        rows = token_major_rows(x)
        dots = (rows @ q.t()).view(x.shape[1], x.shape[0], -1).transpose(0, 1) if rows is not None \
            else x @ q.t()                                                                             # (..., R)
        ctx.save_for_backward(x, q, rho, dots)
        ctx.tau = tau
        return dots * rho * tau

    @staticmethod
    def backward(ctx, gz: torch.Tensor):
        x, q, rho, dots = ctx.saved_tensors
        tau, d = ctx.tau, x.shape[-1]
        c1 = gz * rho * tau                                                                            # (..., R)
        grad_x = grad_q = None
        if ctx.needs_input_grad[0]:
            c2 = (gz * dots).sum(dim=-1, keepdim=True).mul_(rho.pow(3)).mul_(-tau / d)              # (..., 1)
            grad_x = x * c2
            if q.shape[0] == 1:
                grad_x.addcmul_(c1, q[0])                       # the outer product as a broadcast multiply-add
            else:
                grad_x.add_(c1 @ q)
        if ctx.needs_input_grad[1]:
            rows = token_major_rows(x)
            if rows is not None:                                  # the same rows in the same (token-major) order
                grad_q = c1.transpose(0, 1).reshape(-1, c1.shape[-1]).t() @ rows
            else:
                grad_q = c1.reshape(-1, c1.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
        return grad_x, grad_q, None, None


def token_major_rows(x: torch.Tensor) -> Optional[torch.Tensor]:
    """A token-major (B, T, d) view (of a contiguous (T, B, d) tensor) as its (T*B, d) rows without a copy, else
    None: ``matmul`` would copy it to fold (B, T) into rows."""
    if x.dim() == 3 and not x.is_contiguous() and x.transpose(0, 1).is_contiguous():
        return x.transpose(0, 1).reshape(-1, x.shape[-1])
    return None


class DepthWeightedSum(torch.autograd.Function):
    """a = sum_j alpha[..., j] * s_j for sources s_j (..., d) and weights alpha (..., M), with its closed-form
    backward; written by hand because torch has no fused weighted sum over a list of tensors."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, *sources: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(alpha, *sources)
        a = sources[0] * alpha[..., 0:1]
        for j in range(1, len(sources)):
            a.addcmul_(sources[j], alpha[..., j:j + 1])
        return a

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        alpha, *sources = ctx.saved_tensors
        grad_alpha = grad_sources = None
        if ctx.needs_input_grad[0]:
            # <grad a, s_j> per row through one reused product buffer: linalg.vecdot allocates a fresh (..., d)
            # product per source, and on CPU a fresh allocation costs several times the pass itself (page faults)
            grad_alpha = alpha.new_empty(alpha.shape)
            product = torch.empty_like(grad)
            for j, s in enumerate(sources):
                torch.sum(torch.mul(grad, s, out=product), dim=-1, out=grad_alpha[..., j])
        grad_sources = [grad * alpha[..., j:j + 1] if ctx.needs_input_grad[j + 1] else None
                        for j in range(len(sources))]
        return (grad_alpha, *grad_sources)


def depth_weighted_sum(alpha: torch.Tensor, sources: List[torch.Tensor]) -> torch.Tensor:
    """sum_j alpha[..., j] * sources[j] (see DepthWeightedSum)."""
    return DepthWeightedSum.apply(alpha, *sources)


@dataclass
class DepthSources:
    """What a read attends over: the closed blocks (each (B, T, d)) with their precomputed scores, and the running
    partial sum of the current block."""

    closed: Tuple[torch.Tensor, ...]                                # M blocks (B, T, d), b_0 = X0 first
    scores: List[Tuple[int, torch.Tensor]] = field(default_factory=list)  # per block: (first read, (B, T, R'))
    partial: Optional[torch.Tensor] = None                          # (B, T, d) or None when the block is empty

    @property
    def count(self) -> int:
        return len(self.closed) + (self.partial is not None)

    def closed_scores(self, r: int) -> torch.Tensor:
        """(B, T, M) scores of the closed blocks for read r."""
        return torch.stack([z[..., r - first] for first, z in self.scores], dim=-1)

    def keep_last_tokens(self, n: int) -> "DepthSources":
        t = self.closed[0].shape[1]
        return DepthSources(tuple(c[:, t - n:] for c in self.closed), [(f, z[:, t - n:]) for f, z in self.scores],
                            None if self.partial is None else self.partial[:, t - n:])


class BlockAttentionRead(nn.Module):
    """All R reads of one rule: per read a pseudo-query w_r (d, or T x d), one bias per source beta_{r,j} and a
    key-norm gain, stored stacked as (R, d), (R, M_max) and (R, d).

    ``num_sources[r]`` = M_r, the sources read r sees (closed blocks incl. X0, then the partial sum); entries of
    ``beta`` past M_r are never used.
    """

    def __init__(self, num_reads: int, d_model: int, num_tokens: int, score_fn: str = "silu", tau: float = 1.0,
                 beta: float = 0.0, per_token_query: bool = False, eps: float = 1e-6,
                 num_sources: Optional[List[int]] = None, recency_prior: float = 0.0):
        super().__init__()
        if score_fn not in SCORE_FNS:
            raise ValueError(f"unknown score_fn={score_fn!r}; expected one of {list(SCORE_FNS)}")
        num_sources = list(num_sources) if num_sources is not None else [r + 1 for r in range(num_reads)]
        if len(num_sources) != num_reads or min(num_sources) < 1:
            raise ValueError(f"num_sources={num_sources}: expected {num_reads} positive source counts, one per read")
        self.score_fn, self.tau, self.beta_init, self.eps = score_fn, float(tau), float(beta), eps
        self.num_sources, self.recency_prior = num_sources, float(recency_prior)
        shape = (num_reads, num_tokens, d_model) if per_token_query else (num_reads, d_model)
        self.query = nn.Parameter(torch.zeros(shape))
        self.beta = nn.Parameter(torch.zeros(num_reads, max(num_sources)))
        self.key_gain = nn.Parameter(torch.ones(num_reads, d_model))
        self.init_weights()

    def initial_beta(self) -> torch.Tensor:
        """(R, M_max) biases at init: beta + recency_prior * (j - (M_r - 1)) for j < M_r, 0 past M_r."""
        j = torch.arange(self.beta.shape[1], dtype=torch.float32)
        m = torch.tensor(self.num_sources, dtype=torch.float32)[:, None]
        prior = self.beta_init + self.recency_prior * (j - (m - 1))
        return torch.where(j < m, prior, torch.zeros(()))

    def init_weights(self) -> None:
        """Zero pseudo-queries (zero SiLU / uniform softmax weights at step 0), biases at their start, unit gains."""
        with torch.no_grad():
            self.query.zero_()
            self.beta.copy_(self.initial_beta())
            self.key_gain.fill_(1.0)

    def _queries(self, first: int, last: int, num_tokens: int) -> torch.Tensor:
        if self.query.dim() == 3:
            q = self.query[first:last] * self.key_gain[first:last, None, :]
            return q[:, q.shape[1] - num_tokens:]                        # pyramid: the surviving tokens
        return self.query[first:last] * self.key_gain[first:last]

    def _score(self, x: torch.Tensor, first: int, last: int, source: int) -> torch.Tensor:
        """tau * <w_r * g_r, x> / rms(x) + beta_{r,source} for reads first..last-1: (B, T, last - first)."""
        q = self._queries(first, last, x.shape[1]).float()
        if q.dim() == 3:                                                 # per-token queries
            dots = torch.einsum("btd,rtd->btr", x, q)
            return self.tau * dots * inverse_rms(x, self.eps).unsqueeze(-1) + self.beta[first:last, source]
        return NormalisedScore.apply(x, q, self.tau, self.eps) + self.beta[first:last, source]

    def score_block(self, block: torch.Tensor, first_read: int, source: int) -> Tuple[int, torch.Tensor]:
        """Scores of a newly closed block, source index ``source`` (0 = X0), for every read from ``first_read`` on."""
        with torch.autocast(device_type=block.device.type, enabled=False):
            return first_read, self._score(block.float(), first_read, self.beta.shape[0], source)

    def forward(self, r: int, sources: DepthSources) -> Tuple[torch.Tensor, torch.Tensor]:
        """Read r: the weighted sum a (B, T, d) and the depth weights alpha (B, T, M)."""
        closed, partial = sources.closed, sources.partial
        with torch.autocast(device_type=closed[0].device.type, enabled=False):
            z = sources.closed_scores(r)
            if partial is not None:
                z = torch.cat([z, self._score(partial.float(), r, r + 1, z.shape[-1])], dim=-1)
            if self.score_fn == "silu":
                alpha = F.silu(z)
            elif self.score_fn == "sigmoid":
                alpha = torch.sigmoid(z)
            else:
                alpha = softmax_last_dim(z)
            values = list(closed) + ([] if partial is None else [partial])
            a = depth_weighted_sum(alpha, [v.float() for v in values])
        return a.to(closed[0].dtype), alpha
