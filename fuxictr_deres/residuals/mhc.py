"""mHC: Manifold-Constrained Hyper-Connections (DeepSeek, arXiv 2512.24880).

n residual streams per token (x_u in R^{n x d}); for unit u:

    x_{u+1} = H_res x_u + H_post^T f_u(H_pre x_u)
    xn      = RMSNorm(flatten(x_u))                                  (n d), no gain: phi absorbs it
    H_pre   = sigmoid(a_pre * xn phi_pre + b_pre)                    (n), non-negative
    H_post  = 2 sigmoid(a_post * xn phi_post + b_post)               (n), in (0, 2)
    H_res   = SinkhornKnopp(a_res * mat(xn phi_res) + b_res)         (n x n), ~doubly stochastic (20 iterations)

The three phi's are one fused matrix n d -> 2n + n^2 (columns: pre, post, res row-major), init 0 so the model
starts static; a_* are learnable scalars (init 0.01); ``dynamic: false`` drops phi (static mHC).
Init (ours; the paper's values are not public): b_res = 0 on the diagonal and -8 off it (H_res ~ I), b_post = 0
(H_post = 1), b_pre = -log(n - 1) (H_pre = 1/n): every stream equals the Pre-Norm state, so after the
(scale-invariant) final norm the model starts as the Pre-Norm model.
"""

import math

import torch
from torch import nn

from .. import flops_rules
from .hyper_connections import StreamResidual
from ..layers.sinkhorn import sinkhorn

#: Sinkhorn's normalisation steps per iteration, counted as 5 elementwise ops per entry (max, sub, exp, sum, sub)
_SINKHORN_OPS_PER_STEP = 5


class MHCResidual(StreamResidual):
    """``residual: mhc``: manifold-constrained hyper-connections with ``num_streams`` (>= 2) streams."""

    routing_removal = "maps at their init (H_pre = 1/n, H_post = 1, H_res ~ I, phi = 0): ~ Pre-Norm copied over the streams"

    def remove_routing(self) -> None:
        self.reset_to_init()

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 num_streams: int = 4, dynamic: bool = True, sinkhorn_iters: int = 20, scale_init: float = 0.01,
                 res_off_diagonal: float = -8.0, eps: float = 1e-6):
        super().__init__(num_units, d_model, num_tokens, units_per_layer, num_streams)
        if num_streams < 2:
            raise ValueError(f"residual_params.num_streams={num_streams}: mHC needs at least 2 streams "
                             f"(H_pre = sigmoid(.) cannot start at 1/n = 1)")
        if not isinstance(sinkhorn_iters, int) or sinkhorn_iters < 1:
            raise ValueError(f"residual_params.sinkhorn_iters={sinkhorn_iters!r}: expected a positive integer")
        n = num_streams
        self.dynamic, self.sinkhorn_iters, self.eps = bool(dynamic), sinkhorn_iters, eps
        self.scale_init, self.res_off_diagonal = float(scale_init), float(res_off_diagonal)
        self.b_pre = nn.Parameter(torch.empty(num_units, n))
        self.b_post = nn.Parameter(torch.empty(num_units, n))
        self.b_res = nn.Parameter(torch.empty(num_units, n, n))
        if self.dynamic:
            self.phi = nn.Parameter(torch.empty(num_units, n * d_model, 2 * n + n * n))
            self.scales = nn.Parameter(torch.empty(num_units, 3))          # a_pre, a_post, a_res
        self.init_weights()

    def init_weights(self) -> None:
        """H_pre = 1/n, H_post = 1, H_res ~ I; phi = 0 and a_* = ``scale_init`` (starts static)."""
        n = self.num_streams
        with torch.no_grad():
            self.b_pre.fill_(-math.log(n - 1))
            self.b_post.zero_()
            self.b_res.fill_(self.res_off_diagonal)
            self.b_res[:, torch.arange(n), torch.arange(n)] = 0.0
            if self.dynamic:
                self.phi.zero_()
                self.scales.fill_(self.scale_init)

    def maps(self, h: torch.Tensor, u: int):
        n = self.num_streams
        pre, post, res = self.b_pre[u], self.b_post[u], self.b_res[u]
        if self.dynamic:
            with torch.autocast(device_type=h.device.type, enabled=False):
                flat = h.flatten(start_dim=-2).float()                                   # (B, T, n d)
                z = (flat * torch.rsqrt(flat.pow(2).mean(dim=-1, keepdim=True) + self.eps)) @ self.phi[u].float()
                a = self.scales[u].float()
                pre = a[0] * z[..., :n] + pre
                post = a[1] * z[..., n:2 * n] + post
                res = a[2] * z[..., 2 * n:].unflatten(-1, (n, n)) + res
        else:
            pre, post, res = pre.view(1, 1, n), post.view(1, 1, n), res.view(1, 1, n, n)
        return torch.sigmoid(pre), sinkhorn(res, self.sinkhorn_iters), 2 * torch.sigmoid(post)

    def flops(self, num_tokens: int) -> int:
        t, d, n = num_tokens, self.d_model, self.num_streams
        total = self.stream_flops(num_tokens)
        # the maps: per token when dynamic; once per forward (no token axis) when static
        rows = t if self.dynamic else 1
        maps = 3 * n + n * n + 2 * self.sinkhorn_iters * _SINKHORN_OPS_PER_STEP * n * n   # sigmoids, 2x, exp, SK
        if self.dynamic:
            maps += flops_rules.rmsnorm(1, n * d, gain=False) + flops_rules.matmul(1, n * d, 2 * n + n * n) \
                + 2 * (2 * n + n * n)                                                    # norm, phi, a * z + b
        return total + self.num_units * rows * maps

    def _record(self, u, read, mix, write) -> None:
        mean = lambda x: x.detach().float().reshape(-1, *x.shape[2:]).mean(dim=0).cpu()
        self.trace.append({"read": u, "H_pre": mean(read), "H_res": mean(mix), "H_post": mean(write)})
