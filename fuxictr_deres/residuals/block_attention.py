"""Attention over depth: one unit's read of the stored block summaries (Attention Residuals, arXiv 2603.15031;
Pointwise AttnRes of DeRes, arXiv 2606.07980).

    z_j   = tau * <w, RMSNorm(s_j)> + beta          keys are RMS-normalised sources, values the raw sources
    alpha = SiLU(z) | sigmoid(z) | softmax_j(z)     SiLU/sigmoid: no normalisation across sources
    a     = sum_j alpha_j s_j

The RMSNorm gain is folded into the query (<w, g * s / rms(s)> = <w * g, s> / rms(s)), and each closed block's
1/rms is computed once when the block closes, so a read costs two einsums over the stacked sources and never
materialises normalised keys. The math runs in float32 even under autocast.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

SCORE_FNS = ("silu", "sigmoid", "softmax")

#: SiLU(z) = 1 and SiLU'(z) = 1 at z = 1.2785: the attention-only path starts as a copy of its sources' sum.
SILU_UNIT_POINT = 1.2785


def inverse_rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(x^2) + eps) over the last dimension."""
    return torch.rsqrt(x.float().pow(2).mean(dim=-1) + eps)


@dataclass
class DepthSources:
    """The sources a read attends over: closed block summaries (M, B, T, d) and the running partial sum."""

    closed: torch.Tensor                   # (M, B, T, d), b_0 = X0 first
    closed_inv_rms: torch.Tensor           # (M, B, T)
    partial: Optional[torch.Tensor] = None  # (B, T, d) or None when the current block is empty

    @property
    def count(self) -> int:
        return self.closed.shape[0] + (self.partial is not None)


class BlockAttentionRead(nn.Module):
    """One read over depth with its own pseudo-query w (d or T x d), scalar bias beta and key-norm gain."""

    def __init__(self, d_model: int, num_tokens: int, score_fn: str = "silu", tau: float = 1.0,
                 beta: float = 0.0, per_token_query: bool = False, eps: float = 1e-6):
        super().__init__()
        if score_fn not in SCORE_FNS:
            raise ValueError(f"unknown score_fn={score_fn!r}; expected one of {list(SCORE_FNS)}")
        self.score_fn, self.tau, self.beta_init, self.eps = score_fn, float(tau), float(beta), eps
        self.query = nn.Parameter(torch.zeros((num_tokens, d_model) if per_token_query else (d_model,)))
        self.beta = nn.Parameter(torch.zeros(()))
        self.key_gain = nn.Parameter(torch.ones(d_model))
        self.init_weights()

    def init_weights(self) -> None:
        """Zero pseudo-query (uniform/zero scores at step 0), beta at its configured start, unit key gain."""
        with torch.no_grad():
            self.query.zero_()
            self.beta.fill_(self.beta_init)
            self.key_gain.fill_(1.0)

    def forward(self, sources: DepthSources) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return the read a (B, T, d) and the depth weights alpha (M, B, T)."""
        closed = sources.closed
        with torch.autocast(device_type=closed.device.type, enabled=False):
            q = self.query.float() * self.key_gain.float()
            if q.dim() == 2:
                q = q[q.shape[0] - closed.shape[2]:]          # pyramid: the surviving tokens' queries
                spec_closed, spec_one = "mbtd,td->mbt", "btd,td->bt"
            else:
                spec_closed, spec_one = "mbtd,d->mbt", "btd,d->bt"
            z = torch.einsum(spec_closed, closed.float(), q) * sources.closed_inv_rms
            partial = sources.partial
            if partial is not None:
                z_p = torch.einsum(spec_one, partial.float(), q) * inverse_rms(partial, self.eps)
                z = torch.cat([z, z_p.unsqueeze(0)], dim=0)
            z = self.tau * z + self.beta
            if self.score_fn == "silu":
                alpha = F.silu(z)
            elif self.score_fn == "sigmoid":
                alpha = torch.sigmoid(z)
            else:
                alpha = torch.softmax(z, dim=0)
            m = closed.shape[0]
            a = torch.einsum("mbt,mbtd->btd", alpha[:m], closed.float())
            if partial is not None:
                a = a + alpha[m].unsqueeze(-1) * partial.float()
        return a.to(closed.dtype), alpha
