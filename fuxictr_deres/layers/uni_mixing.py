"""UniMixer's token mixing (Ha et al., arXiv 2604.00590): a structured soft permutation of the flattened tokens.

Flatten X (T, d) to length T*d and cut it into n blocks x_1..x_n of width b (n b = T d):
    local : h_i = x_i W_B^i,                     W_B^i = Sinkhorn(exp(sym(L_i) / tau))          (b x b, one per block)
    global: out = reshape(W_G [h_1; ...; h_n]),  W_G   = Sinkhorn(exp(sym(G) / tau))            (n x n)
Lite:  L_i = sum_l w_l^i Z_l from m shared bases Z;  G = A B, A in R^{n x r}, B in R^{r x n}.
sym(W) = (W + W^T) / 2; tau is set from outside (annealed 1.0 -> 0.05 over training by the model).

With b = d / T (the default when T divides d) there are n = T^2 blocks, and the TokenMixer / RankMixer shuffle
(output token h gathers chunk h of every token) is the block permutation P[h T + t, t T + h] = 1, which is
symmetric, so W_B = I, W_G = P is a point of the parametrisation: UniMixer can express TokenMixer. With b = d it
could only permute whole tokens.
"""

from typing import Optional

import torch
from torch import nn

from .. import flops_rules
from .sinkhorn import sinkhorn, symmetrise


MIXING_INITS = ("tokenmixer", "identity", "uniform")


def default_block_size(num_tokens: int, d_model: int) -> int:
    """The largest divisor of d that is <= d / T (d / T itself when T divides d)."""
    return max(b for b in range(1, max(1, d_model // num_tokens) + 1) if d_model % b == 0)


def tokenmixer_permutation(num_tokens: int, block_size: int, d_model: int) -> torch.Tensor:
    """(n, n) block permutation of the TokenMixer shuffle at b = d / T: P[h T + t, t T + h] = 1."""
    if block_size * num_tokens != d_model:
        raise ValueError(f"mixing_init=tokenmixer needs block_size = d_model / num_tokens = "
                         f"{d_model}/{num_tokens}, got block_size={block_size}; use mixing_init=identity")
    t = num_tokens
    idx = torch.arange(t * t)
    p = torch.zeros(t * t, t * t)
    p[(idx % t) * t + idx // t, idx] = 1.0
    return p


class UniMixing(nn.Module):
    """(B, T, d) -> (B, T, d); a pure unit with an optional RMSNorm in front (``norm``).

    Init [ours; the paper gives none]. Before (identity logits 4 I, tau 1 -> 0.05) the init dominated: the logits
    are divided by tau, so by tau = 0.05 a 4 I init is 80 I and the mixing was the identity from about epoch 2 on,
    whatever was learnt (the units then did nothing). Now the init is a weak prior that learning can overturn:
    logits ``init_scale`` * pattern (+ N(0, 0.01)), the pattern the TokenMixer permutation for W_G and I for W_B
    (``mixing_init: tokenmixer``, the default when b = d / T), I for both (``identity``, the default for other b)
    or none (``uniform``); 0.1 at n = T^2
    blocks is close to uniform at tau = 1 and sharpens with the schedule only where the gradient keeps it.
    UniMixer's model gives the mixing logits their own learning-rate multiplier so they move O(1) in a short run.
    Lite: the first basis is ``init_scale`` * I with weight 1 in every block; the global logits A B start at
    exactly 0 (uniform) with B = 0 and A ~ N(0, 1/r), so B gets a gradient from the first step (A, B both small
    and random left A B ~ 1e-2 and the Lite global mixing stayed at 1/n).
    Sinkhorn acts on parameters only, once per batch: its cost is not per sample and is left out of ``flops``.
    """

    def __init__(self, num_tokens: int, d_model: int, block_size: int = None, num_iters: int = 20,
                 lite: bool = False, num_bases: int = 4, global_rank: int = 4, init_scale: float = 0.1,
                 mixing_init: Optional[str] = None, norm: bool = True):
        super().__init__()
        width = num_tokens * d_model
        b = block_size or default_block_size(num_tokens, d_model)
        if width % b != 0:
            raise ValueError(f"unimixer block_size={b} must divide num_tokens * d_model = {width}")
        if mixing_init is None:                       # the TokenMixer prior where it is expressible, else I
            mixing_init = "tokenmixer" if b * num_tokens == d_model else "identity"
        if mixing_init not in MIXING_INITS:
            raise ValueError(f"unimixer mixing_init={mixing_init!r}; expected one of {list(MIXING_INITS)}")
        self.num_tokens, self.d_model, self.block, self.num_blocks = num_tokens, d_model, b, width // b
        self.num_iters, self.lite, self.init_scale, self.mixing_init = num_iters, lite, init_scale, mixing_init
        if mixing_init == "tokenmixer":
            self.register_buffer("global_pattern", tokenmixer_permutation(num_tokens, b, d_model), persistent=False)
        else:
            self.register_buffer("global_pattern", torch.eye(width // b) * (mixing_init == "identity"),
                                 persistent=False)
        n = self.num_blocks
        self.norm = nn.RMSNorm(d_model, eps=1e-6) if norm else nn.Identity()
        self.register_buffer("tau", torch.tensor(1.0))
        if lite:
            self.bases = nn.Parameter(torch.empty(num_bases, b, b))
            self.basis_weights = nn.Parameter(torch.empty(n, num_bases))
            self.global_a = nn.Parameter(torch.empty(n, global_rank))
            self.global_b = nn.Parameter(torch.empty(global_rank, n))
        else:
            self.local_logits = nn.Parameter(torch.empty(n, b, b))
            self.global_logits = nn.Parameter(torch.empty(n, n))
        self.init_weights()

    def init_weights(self) -> None:
        b = self.block
        local_scale = 0.0 if self.mixing_init == "uniform" else self.init_scale
        with torch.no_grad():
            if self.lite:
                self.bases.normal_(0.0, 0.01)
                self.bases[0] += local_scale * torch.eye(b)
                self.basis_weights.zero_()
                self.basis_weights[:, 0] = 1.0
                self.global_a.normal_(0.0, self.global_a.shape[1] ** -0.5)
                self.global_b.zero_()
            else:
                self.local_logits.normal_(0.0, 0.01).add_(local_scale * torch.eye(b))
                self.global_logits.normal_(0.0, 0.01).add_(self.init_scale * self.global_pattern)

    def mixing_parameters(self) -> list:
        """The logits' parameters (the model gives them their own learning-rate multiplier)."""
        return list(self.parameters())

    def initial_matrices(self):
        """(W_B, W_G) of the noise-free init at the current temperature (the reference ``diagnose`` measures
        the distance from)."""
        b, n = self.block, self.num_blocks
        local_scale = 0.0 if self.mixing_init == "uniform" else self.init_scale
        local = (local_scale * torch.eye(b)).expand(n, b, b)
        glob = torch.zeros(n, n) if self.lite else self.init_scale * self.global_pattern
        return sinkhorn(local / self.tau, self.num_iters), sinkhorn(glob / self.tau, self.num_iters)

    def mixing_matrices(self):
        """(W_B (n, b, b), W_G (n, n)) at the current temperature."""
        if self.lite:
            local = torch.einsum("nm,mij->nij", self.basis_weights, self.bases)
            glob = self.global_a @ self.global_b
        else:
            local, glob = self.local_logits, self.global_logits
        return (sinkhorn(symmetrise(local) / self.tau, self.num_iters),
                sinkhorn(symmetrise(glob) / self.tau, self.num_iters))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        w_local, w_global = self.mixing_matrices()
        x = self.norm(h).reshape(bsz, self.num_blocks, self.block)
        local = torch.einsum("bni,nij->bnj", x, w_local)
        return torch.einsum("mn,bnj->bmj", w_global, local).reshape(bsz, t, d)

    def flops(self, num_tokens: int) -> int:
        n, b = self.num_blocks, self.block
        norm = flops_rules.rmsnorm(num_tokens, self.d_model) if isinstance(self.norm, nn.RMSNorm) else 0
        return norm + n * flops_rules.matmul(1, b, b) + flops_rules.matmul(n, n, b)
