"""DeRes: dual-path residual (Cheng et al., arXiv 2606.07980), as specified in specs/deres.md.

Two states run side by side, as in Dual Path Networks:

    y      identity stream: X0 + sum of all unit outputs so far (lambda_u * y + o with identity_mode=learnable)
    blocks closed block summaries [b_0 = X0, b_1, ...] (a block summary is the SUM of its unit outputs) and the
           running partial sum p of the current block

    unit u:   a = BlockAttentionRead_u(blocks + [p]);  g = sigmoid(theta_u);  h = g * y + (1 - g) * a
              (the read's scores z_j = tau <w_u, RMSNorm(s_j)> + beta_{u,j}: one bias per source, see
              block_attention.py; a shared per-read bias would get no gradient)
              o = f_u(h);  y <- y + o;  p <- p + o;  close the block every S units
    end:      one more read with its own query and gate gives the final state

path_mode=identity fixes g = 1 (exactly the Pre-Norm model), path_mode=attn fixes g = 0 (Block AttnRes).

``rescale_mix`` (default on) divides the mix by the gate's initial value g0 (1/2): h = (g * y + (1 - g) * a) / g0,
so that h = y exactly at init (a = 0) and DeRes starts as the Pre-Norm model at ANY token scale [ours]. Where h
feeds an RMSNorm (the OneTrans units' pre-norm, the final norm) a constant factor only matters where the norm's eps
is not negligible, and there it does: with FuxiCTR's embedding init (std 1e-4) and no tokenizer input norm,
mean(X0^2) ~ 1e-9 is far below eps = 1e-6, RMSNorm(0.5 y) != RMSNorm(y), and the paper's literal mix
(``rescale_mix: false``) differs from the Pre-Norm model at init (logits up to ~4e-2 apart). Units that do not
normalise their input (TokenMixer-Large's in-layout residual) and ``final_norm: false`` also see y, not y / 2.
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .base import ResidualRule, keep_last_tokens
from .block_attention import SCORE_FNS, SILU_UNIT_POINT, BlockAttentionRead, DepthSources
from .gate import VectorGate, gate_mix

PATH_MODES = ("dual", "identity", "attn")
IDENTITY_MODES = ("identity", "learnable")


@dataclass
class DeResState:
    y: torch.Tensor                      # identity stream (B, T, d)
    sources: Optional[DepthSources]      # closed blocks + partial sum; None on the identity-only path
    units_in_block: int = 0


def units_per_block(num_units: int, units_per_layer: int, num_blocks: Optional[int],
                    block_size: Optional[int]) -> int:
    """S, the number of units summed into one block.

    ``block_size`` counts layers per block; ``num_blocks`` N splits the U units into N blocks of ceil(U / N)
    units (N = U is Full AttnRes); neither: N = min(8, L) blocks.
    """
    if num_blocks is not None and block_size is not None:
        raise ValueError("residual_params: give num_blocks or block_size, not both")
    if block_size is not None:
        if block_size < 1:
            raise ValueError(f"residual_params.block_size={block_size}: must be >= 1 layer")
        return block_size * units_per_layer
    num_layers = math.ceil(num_units / units_per_layer)
    n = min(8, num_layers) if num_blocks is None else num_blocks
    if not 1 <= n <= num_units:
        raise ValueError(f"residual_params.num_blocks={n}: must be between 1 and the number of units ({num_units})")
    return math.ceil(num_units / n)


class DeResResidual(ResidualRule):
    """The DeRes rule; every option of specs/deres.md is a constructor argument (``residual_params``)."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 path_mode: str = "dual", identity_mode: str = "identity", score_fn: str = "silu",
                 tau: Optional[float] = None, beta: Optional[float] = None, gate: str = "static",
                 gate_value: float = 0.5, gate_rank: int = 4, num_blocks: Optional[int] = None,
                 block_size: Optional[int] = None, per_token_query: bool = False, eps: float = 1e-6,
                 recency_prior: float = 0.0, rescale_mix: bool = True):
        super().__init__(num_units, d_model, num_tokens, units_per_layer)
        for key, value, allowed in (("path_mode", path_mode, PATH_MODES),
                                    ("identity_mode", identity_mode, IDENTITY_MODES),
                                    ("score_fn", score_fn, SCORE_FNS)):
            if value not in allowed:
                raise ValueError(f"residual_params.{key}={value!r}; expected one of {list(allowed)}")
        self.path_mode, self.identity_mode, self.eps = path_mode, identity_mode, eps
        self.block_units = units_per_block(num_units, units_per_layer, num_blocks, block_size)
        self.tau = 1.0 / math.sqrt(d_model) if tau is None else float(tau)
        if beta is None:
            # Attention-only with SiLU must not start at beta = 0: the unit input would be exactly 0.
            beta = SILU_UNIT_POINT if (path_mode == "attn" and score_fn == "silu") else 0.0
        self.beta = float(beta)
        if path_mode != "identity":
            self.reads = BlockAttentionRead(num_units + 1, d_model, num_tokens, score_fn, self.tau, self.beta,
                                            per_token_query, eps, self.sources_per_read(), recency_prior)
        if path_mode == "dual":
            self.gates = nn.ModuleList(VectorGate(gate, d_model, num_tokens, gate_value, gate_rank, eps)
                                       for _ in range(num_units + 1))
            g0 = self.gates[0].initial_value
            # a fixed gate of 0 is the attention path alone: nothing to rescale
            self.mix_scale = 1.0 / g0 if (rescale_mix and g0 > 0) else 1.0
        if identity_mode == "learnable":
            self.identity_scale = nn.Parameter(torch.ones(num_units, d_model))
        self.identity_only = False                                        # set by remove_routing()

    @property
    def routing_removal(self) -> str:
        if self.path_mode == "attn":
            return "depth reads at their init (zero queries, initial biases: softmax = uniform 1/M, SiLU = sum)"
        return "gate fixed to 1 (h = y): the identity path, i.e. the Pre-Norm model with the same weights"

    def remove_routing(self) -> None:
        """dual: h = y (path_mode identity); attn: the reads back at their initialisation."""
        if self.path_mode == "attn":
            self.reads.init_weights()
        else:
            self.identity_only = True

    def init_weights(self) -> None:
        if self.identity_mode == "learnable":
            with torch.no_grad():
                self.identity_scale.fill_(1.0)

    def init(self, x0: torch.Tensor) -> DeResState:
        if self.path_mode == "identity":
            return DeResState(x0, None)
        closed = (x0,)                                                    # b_0 = X0
        return DeResState(x0, DepthSources(closed, [self.reads.score_block(x0, 0, 0)]))

    def _mix(self, state: DeResState, r: int) -> torch.Tensor:
        if self.path_mode == "identity" or self.identity_only:
            return state.y
        a, alpha = self.reads(r, state.sources)
        if self.path_mode == "attn":
            h, g = a, None
        else:
            g = self.gates[r](state.y).to(state.y.dtype)          # float32 parameters, bf16 states under autocast
            h = gate_mix(a, state.y, g, self.mix_scale)                  # mix_scale * (g * y + (1 - g) * a)
        if self.trace is not None:
            self._record(r, state, a, alpha, g, h)
        return h

    def unit_input(self, state: DeResState, u: int) -> torch.Tensor:
        return self._mix(state, u)

    def update(self, state: DeResState, u: int, out: torch.Tensor) -> DeResState:
        y = state.y + out if self.identity_mode == "identity" else torch.addcmul(out, self.identity_scale[u], state.y)
        if self.path_mode == "identity":
            return DeResState(y, None)
        src = state.sources
        partial = out if src.partial is None else src.partial + out
        count = state.units_in_block + 1
        if count < self.block_units:
            return DeResState(y, DepthSources(src.closed, src.scores, partial), count)
        closed = src.closed + (partial,)
        scores = src.scores + [self.reads.score_block(partial, u + 1, len(src.closed))]
        return DeResState(y, DepthSources(closed, scores, None), 0)

    def readout(self, state: DeResState) -> torch.Tensor:
        """The final read (own query and gate) over all blocks; it also closes a last, shorter block."""
        return self._mix(state, self.num_units)

    def shrink(self, state: DeResState, num_tokens: int) -> DeResState:
        sources = None if state.sources is None else state.sources.keep_last_tokens(num_tokens)
        return DeResState(keep_last_tokens(state.y, num_tokens), sources, state.units_in_block)

    def current_tokens(self, state: DeResState) -> int:
        return state.y.shape[1]

    def sources_per_read(self) -> list:
        """How many sources each of the U + 1 reads attends over (closed blocks incl. X0, + the partial sum)."""
        s = self.block_units
        return [1 + r // s + (r % s != 0) for r in range(self.num_units + 1)]

    def flops(self, num_tokens: int) -> int:
        """Per unit ~ T (4 d M + 8 d) for the dual path: each block is scored once for all later reads, each read
        is one weighted sum over its M sources, plus the partial sum's score, the gate mix and two adds."""
        t, d, s = num_tokens, self.d_model, self.block_units
        reads = self.num_units + 1
        total = self.num_units * t * d * (2 if self.identity_mode == "learnable" else 1)   # y update
        if self.path_mode == "identity":
            return total
        rms = 3 * t * d + t
        closes = [0] + [u + 1 for u in range(self.num_units) if (u + 1) % s == 0]        # first read of each block
        total += sum(2 * t * d * (reads - first) + rms + 2 * t * (reads - first) for first in closes)
        total += 2 * d * reads                                                            # w * gain
        for r, m in enumerate(self.sources_per_read()):
            has_partial = r % s != 0
            total += t * m + 2 * t * d * (m - has_partial)                                # alpha, weighted sum
            if has_partial:
                total += 2 * t * d + rms + 2 * t + 2 * t * d                              # its score, addcmul
            if self.path_mode == "dual":
                total += d + 3 * t * d                                                    # sigmoid, lerp
        total += (self.num_units - len(closes) + 1) * t * d                               # p <- p + o
        return total

    def _record(self, r, state, a, alpha, g, h) -> None:
        """alpha's mean/spread per source, ||a|| / ||y||, the part of a orthogonal to y per token
        ||a - (<a,y>/<y,y>) y|| / ||y|| (what the next norm cannot cancel), and 1 - cos(h, y) per token."""
        with torch.no_grad():
            flat = alpha.detach().float().reshape(-1, alpha.shape[-1]).t()
            y, a, h = state.y.float(), a.float(), h.float()
            y_norm = y.norm().clamp_min(1e-30)
            coef = (a * y).sum(-1, keepdim=True) / (y * y).sum(-1, keepdim=True).clamp_min(1e-30)
            cos = torch.nn.functional.cosine_similarity(h, y, dim=-1, eps=1e-30)
            entry = {"read": r, "num_sources": alpha.shape[-1],
                     "alpha_mean": flat.mean(dim=1).cpu(), "alpha_std": flat.std(dim=1, unbiased=False).cpu(),
                     "read_to_identity": (a.norm() / y_norm).item(),
                     "perp_to_identity": ((a - coef * y).norm() / y_norm).item(),
                     "input_off_identity": (1.0 - cos).mean().item()}
            if g is not None:
                entry["gate_mean"] = g.detach().float().reshape(-1, g.shape[-1]).mean(dim=0).cpu() \
                    if g.dim() else g.detach().float().cpu().expand(self.d_model)
            self.trace.append(entry)
