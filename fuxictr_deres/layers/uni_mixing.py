"""UniMixer's token mixing (Ha et al., arXiv 2604.00590): a structured soft permutation of the flattened tokens.

Flatten X (T, d) to length T*d and cut it into n blocks x_1..x_n of width b (n b = T d):
    local : h_i = x_i W_B^i,                     W_B^i = Sinkhorn(exp(sym(L_i) / tau))          (b x b, one per block)
    global: out = reshape(W_G [h_1; ...; h_n]),  W_G   = Sinkhorn(exp(sym(G) / tau))            (n x n)
Lite:  L_i = sum_l w_l^i Z_l from m shared bases Z;  G = A B, A in R^{n x r}, B in R^{r x n}.
sym(W) = (W + W^T) / 2; tau is set from outside (annealed 1.0 -> 0.05 over training by the model).
"""

import torch
from torch import nn

from .. import flops_rules
from .sinkhorn import sinkhorn, symmetrise


class UniMixing(nn.Module):
    """(B, T, d) -> (B, T, d); a pure unit with an optional RMSNorm in front (``norm``).

    Init [ours; the paper gives none]: logits ``identity_init`` * I plus N(0, 0.01) noise, so at tau = 1 each
    matrix starts close to the identity instead of the rank-one uniform average (Lite: the first basis is
    ``identity_init`` * I with weight 1 in every block; the low-rank global logits A B start small and random).
    Sinkhorn acts on parameters only, once per batch: its cost is not per sample and is left out of ``flops``.
    """

    def __init__(self, num_tokens: int, d_model: int, block_size: int = None, num_iters: int = 20,
                 lite: bool = False, num_bases: int = 4, global_rank: int = 4, identity_init: float = 4.0,
                 norm: bool = True):
        super().__init__()
        width = num_tokens * d_model
        b = block_size or d_model
        if width % b != 0:
            raise ValueError(f"unimixer block_size={b} must divide num_tokens * d_model = {width}")
        self.num_tokens, self.d_model, self.block, self.num_blocks = num_tokens, d_model, b, width // b
        self.num_iters, self.lite, self.identity_init = num_iters, lite, identity_init
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
        b, n = self.block, self.num_blocks
        with torch.no_grad():
            if self.lite:
                self.bases.normal_(0.0, 0.01)
                self.bases[0] += self.identity_init * torch.eye(b)
                self.basis_weights.zero_()
                self.basis_weights[:, 0] = 1.0
                self.global_a.normal_(0.0, 0.1)
                self.global_b.normal_(0.0, 0.1)
            else:
                self.local_logits.normal_(0.0, 0.01).add_(self.identity_init * torch.eye(b))
                self.global_logits.normal_(0.0, 0.01).add_(self.identity_init * torch.eye(n))

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
