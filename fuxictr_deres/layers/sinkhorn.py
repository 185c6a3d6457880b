"""Sinkhorn-Knopp normalisation in log space: a (soft) doubly stochastic matrix from unconstrained logits.

    P = Sinkhorn(exp(Z)): alternate row and column normalisation of exp(Z), ``num_iters`` times (20 by default),
    done as log-sum-exp subtractions so large logits / small temperatures do not overflow.
"""

import torch


def sinkhorn(logits: torch.Tensor, num_iters: int = 20) -> torch.Tensor:
    """(..., n, n) logits -> (..., n, n) matrix whose rows and columns each sum to ~1 (columns exactly)."""
    log_p = logits
    for _ in range(num_iters):
        log_p = log_p - torch.logsumexp(log_p, dim=-1, keepdim=True)
        log_p = log_p - torch.logsumexp(log_p, dim=-2, keepdim=True)
    return log_p.exp()


def symmetrise(w: torch.Tensor) -> torch.Tensor:
    """(W + W^T) / 2 over the last two axes."""
    return 0.5 * (w + w.transpose(-1, -2))
