"""Hyper-Connections (Zhu et al., ICLR 2025, arXiv 2409.19606), static and dynamic.

The state is expanded to n streams per token, H in (B, T, n, d); the input is n copies of X0 and the output the
sum of the streams. For unit u, with the n x (1 + n) matrix alpha = [A_m | A_r] and the write vector B:

    h_in = A_m^T H                    which streams the unit reads
    H'   = A_r^T H + B^T f_u(h_in)    stream mixing, and where the unit's output is written

Static HC: alpha and B are parameters. Dynamic HC (``dynamic: true``), with Hn = RMSNorm(H) per stream:

    alpha(H) = s_alpha * tanh(Hn W_alpha) + alpha     W_alpha in R^{d x (1 + n)}, init 0
    B(H)     = s_beta  * tanh(Hn W_beta)^T + B        W_beta in R^d, init 0;  s_alpha, s_beta learned, init 0.01

Init: A_m = e_(u mod n), A_r = I, B = 1: every stream equals the Pre-Norm state, so after the (scale-invariant)
final norm the model starts as the Pre-Norm model. Unconstrained A_r products can blow the signal up over depth
(mHC's motivation). ``StreamResidual`` holds what HC and mHC share (expand, mix, write, sum, shrink).
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from .. import flops_rules
from .base import ResidualRule


@dataclass
class StreamState:
    h: torch.Tensor                                        # (B, T, n, d) residual streams
    pending: Optional[Tuple[torch.Tensor, torch.Tensor]] = None   # (mix (.., n, n), write (.., n)) for update


def _keep_last(x: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Slice a (B, T, ...) tensor to its last tokens; static maps with a broadcast token axis of 1 stay."""
    return x if x.shape[1] == 1 else x[:, x.shape[1] - num_tokens:]


class StreamResidual(ResidualRule):
    """n residual streams per token; a subclass gives, per unit, the read weights (.., n), the stream mixing
    matrix M (.., n, n) applied as H <- M H, and the write weights (.., n)."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 num_streams: int = 4):
        super().__init__(num_units, d_model, num_tokens, units_per_layer)
        if not isinstance(num_streams, int) or num_streams < 1:
            raise ValueError(f"residual_params.num_streams={num_streams!r}: expected a positive integer")
        self.num_streams = num_streams

    def maps(self, h: torch.Tensor, u: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(read (.., n), mix (.., n, n), write (.., n)) for unit u, broadcastable over (B, T)."""
        raise NotImplementedError

    def init(self, x0: torch.Tensor) -> StreamState:
        return StreamState(x0.unsqueeze(-2).expand(*x0.shape[:-1], self.num_streams, x0.shape[-1]))

    def unit_input(self, state: StreamState, u: int) -> torch.Tensor:
        read, mix, write = self.maps(state.h, u)
        if self.trace is not None:
            self._record(u, read, mix, write)
        state.pending = (mix, write)
        return torch.einsum("...s,...sd->...d", read.to(state.h.dtype), state.h)

    def update(self, state: StreamState, u: int, out: torch.Tensor) -> StreamState:
        mix, write = state.pending
        # H' = M H as a broadcast product and a sum over n: per-token n x n matmuls would be B*T tiny batched GEMMs
        # (about 5x slower on CPU for n = 4)
        mixed = (mix.to(state.h.dtype).unsqueeze(-1) * state.h.unsqueeze(-3)).sum(dim=-2)
        return StreamState(torch.addcmul(mixed, write.unsqueeze(-1).to(out.dtype), out.unsqueeze(-2)))

    def readout(self, state: StreamState) -> torch.Tensor:
        return state.h.sum(dim=-2)

    def shrink(self, state: StreamState, num_tokens: int) -> StreamState:
        pending = None if state.pending is None else tuple(_keep_last(x, num_tokens) for x in state.pending)
        return StreamState(state.h[:, state.h.shape[1] - num_tokens:], pending)

    def current_tokens(self, state: StreamState) -> int:
        return state.h.shape[1]

    def stream_flops(self, num_tokens: int) -> int:
        """Per unit: read (2 n T d), mix (2 n^2 T d), write and add (2 n T d); then the final sum of streams."""
        t, d, n = num_tokens, self.d_model, self.num_streams
        return self.num_units * (2 * n * t * d + 2 * n * n * t * d + 2 * n * t * d) + (n - 1) * t * d

    def _record(self, u: int, read, mix, write) -> None:
        raise NotImplementedError


class HyperConnectionsResidual(StreamResidual):
    """``residual: hc``: Hyper-Connections with ``num_streams`` streams (4), static or ``dynamic``."""

    routing_removal = "maps at their init (A_m = e_u, A_r = I, B = 1, dynamic W = 0): Pre-Norm copied over the streams"

    def remove_routing(self) -> None:
        self.reset_to_init()

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 num_streams: int = 4, dynamic: bool = False, dynamic_scale: float = 0.01, eps: float = 1e-6):
        super().__init__(num_units, d_model, num_tokens, units_per_layer, num_streams)
        n, self.dynamic, self.dynamic_scale, self.eps = num_streams, bool(dynamic), float(dynamic_scale), eps
        # alpha[u] = [A_m | A_r] (n x (1 + n)); beta[u] = B (n)
        self.static_alpha = nn.Parameter(torch.empty(num_units, n, 1 + n))
        self.static_beta = nn.Parameter(torch.empty(num_units, n))
        if self.dynamic:
            self.norm_gain = nn.Parameter(torch.empty(num_units, d_model))
            self.dynamic_alpha = nn.Parameter(torch.empty(num_units, d_model, 1 + n))
            self.dynamic_beta = nn.Parameter(torch.empty(num_units, d_model))
            self.alpha_scale = nn.Parameter(torch.empty(num_units))
            self.beta_scale = nn.Parameter(torch.empty(num_units))
        self.init_weights()

    def init_weights(self) -> None:
        """A_m = e_(u mod n), A_r = I, B = 1; dynamic: W = 0, s = ``dynamic_scale``, unit norm gain."""
        n = self.num_streams
        with torch.no_grad():
            self.static_alpha.zero_()
            self.static_alpha[torch.arange(self.num_units), torch.arange(self.num_units) % n, 0] = 1.0
            self.static_alpha[:, :, 1:] = torch.eye(n)
            self.static_beta.fill_(1.0)
            if self.dynamic:
                self.norm_gain.fill_(1.0)
                self.dynamic_alpha.zero_()
                self.dynamic_beta.zero_()
                self.alpha_scale.fill_(self.dynamic_scale)
                self.beta_scale.fill_(self.dynamic_scale)

    def maps(self, h: torch.Tensor, u: int):
        alpha, beta = self.static_alpha[u], self.static_beta[u]
        if self.dynamic:
            hn = h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.norm_gain[u]
            alpha = self.alpha_scale[u] * torch.tanh(hn @ self.dynamic_alpha[u]) + alpha    # (B, T, n, 1 + n)
            beta = self.beta_scale[u] * torch.tanh(hn @ self.dynamic_beta[u]) + beta        # (B, T, n)
        else:
            alpha, beta = alpha.view(1, 1, *alpha.shape), beta.view(1, 1, -1)
        return alpha[..., 0], alpha[..., 1:].transpose(-1, -2), beta

    def flops(self, num_tokens: int) -> int:
        t, d, n = num_tokens, self.d_model, self.num_streams
        total = self.stream_flops(num_tokens)
        if self.dynamic:
            per_unit = (flops_rules.rmsnorm(n * t, d) + flops_rules.matmul(n * t, d, 1 + n) + 3 * n * t * (1 + n)
                        + flops_rules.matmul(n * t, d, 1) + 3 * n * t)          # norm, W's, tanh * s + static
            total += self.num_units * per_unit
        return total

    def _record(self, u, read, mix, write) -> None:
        mean = lambda x: x.detach().float().reshape(-1, *x.shape[2:]).mean(dim=0).cpu()
        self.trace.append({"read": u, "A_m": mean(read), "A_r": mean(mix).transpose(-1, -2).contiguous(),
                           "B": mean(write)})
