"""DeRes: dual-path residual (Cheng et al., arXiv 2606.07980), as specified in specs/deres.md.

Two states run side by side, as in Dual Path Networks:

    y      identity stream: X0 + sum of all unit outputs so far (lambda_u * y + o with identity_mode=learnable)
    blocks closed block summaries [b_0 = X0, b_1, ...] (a block summary is the SUM of its unit outputs) and the
           running partial sum p of the current block

    unit u:   a = BlockAttentionRead_u(blocks + [p]);  g = sigmoid(theta_u);  h = g * y + (1 - g) * a
              o = f_u(h);  y <- y + o;  p <- p + o;  close the block every S units
    end:      one more read with its own query and gate gives the final state

path_mode=identity fixes g = 1 (exactly the Pre-Norm model), path_mode=attn fixes g = 0 (Block AttnRes).
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .base import ResidualRule, keep_last_tokens
from .block_attention import SCORE_FNS, SILU_UNIT_POINT, BlockAttentionRead, DepthSources, inverse_rms
from .gate import VectorGate

PATH_MODES = ("dual", "identity", "attn")
IDENTITY_MODES = ("identity", "learnable")


@dataclass
class DeResState:
    y: torch.Tensor                     # identity stream (B, T, d)
    closed: torch.Tensor                # closed block summaries (M, B, T, d)
    closed_inv_rms: torch.Tensor        # (M, B, T)
    partial: Optional[torch.Tensor]     # running sum of the current block, None when empty
    units_in_block: int = 0

    def sources(self) -> DepthSources:
        return DepthSources(self.closed, self.closed_inv_rms, self.partial)


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
                 block_size: Optional[int] = None, per_token_query: bool = False, eps: float = 1e-6):
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
            self.reads = nn.ModuleList(
                BlockAttentionRead(d_model, num_tokens, score_fn, self.tau, self.beta, per_token_query, eps)
                for _ in range(num_units + 1))
        if path_mode == "dual":
            self.gates = nn.ModuleList(VectorGate(gate, d_model, num_tokens, gate_value, gate_rank, eps)
                                       for _ in range(num_units + 1))
        if identity_mode == "learnable":
            self.identity_scale = nn.Parameter(torch.ones(num_units, d_model))

    def init_weights(self) -> None:
        if self.identity_mode == "learnable":
            with torch.no_grad():
                self.identity_scale.fill_(1.0)

    def init(self, x0: torch.Tensor) -> DeResState:
        if self.path_mode == "identity":
            return DeResState(x0, x0.new_empty(0), x0.new_empty(0), None)
        return DeResState(x0, x0.unsqueeze(0), inverse_rms(x0, self.eps).unsqueeze(0), None)

    def _mix(self, state: DeResState, r: int) -> torch.Tensor:
        if self.path_mode == "identity":
            return state.y
        a, alpha = self.reads[r](state.sources())
        if self.path_mode == "attn":
            h, g = a, None
        else:
            g = self.gates[r](state.y)
            h = a + g * (state.y - a)
        if self.trace is not None:
            self._record(r, state, a, alpha, g)
        return h

    def unit_input(self, state: DeResState, u: int) -> torch.Tensor:
        return self._mix(state, u)

    def update(self, state: DeResState, u: int, out: torch.Tensor) -> DeResState:
        y = state.y + out if self.identity_mode == "identity" else self.identity_scale[u] * state.y + out
        if self.path_mode == "identity":
            return DeResState(y, state.closed, state.closed_inv_rms, None)
        partial = out if state.partial is None else state.partial + out
        count = state.units_in_block + 1
        if count < self.block_units:
            return DeResState(y, state.closed, state.closed_inv_rms, partial, count)
        closed = torch.cat([state.closed, partial.unsqueeze(0)], dim=0)
        inv = torch.cat([state.closed_inv_rms, inverse_rms(partial, self.eps).unsqueeze(0)], dim=0)
        return DeResState(y, closed, inv, None, 0)

    def readout(self, state: DeResState) -> torch.Tensor:
        """The final read (own query and gate) over all blocks; it also closes a last, shorter block."""
        return self._mix(state, self.num_units)

    def shrink(self, state: DeResState, num_tokens: int) -> DeResState:
        keep = lambda x: None if x is None else keep_last_tokens(x, num_tokens)
        inv = state.closed_inv_rms
        inv = inv[..., inv.shape[-1] - num_tokens:] if inv.numel() else inv
        closed = keep(state.closed) if state.closed.numel() else state.closed
        return DeResState(keep(state.y), closed, inv, keep(state.partial), state.units_in_block)

    def current_tokens(self, state: DeResState) -> int:
        return state.y.shape[1]

    def sources_per_read(self) -> list:
        """How many sources each of the U + 1 reads attends over (closed blocks incl. X0, + the partial sum)."""
        s = self.block_units
        return [1 + r // s + (r % s != 0) for r in range(self.num_units + 1)]

    def flops(self, num_tokens: int) -> int:
        """Per unit ~ T (4 d M + 8 d) for the dual path: scores and read (2 einsums over M sources), the
        partial sum's 1/rms, the gate mix, the identity and partial-sum adds."""
        t, d = num_tokens, self.d_model
        total = self.num_units * t * d                                   # y <- y + o
        if self.identity_mode == "learnable":
            total += self.num_units * t * d
        if self.path_mode == "identity":
            return total
        s = self.block_units
        for r, m in enumerate(self.sources_per_read()):
            total += d + 2 * t * d * m + 4 * t * m + 2 * t * d * m       # q*gain, scores, rms/tau/beta/score, read
            if r % s:                                                    # partial sum: 1/rms, its weighted add
                total += 3 * t * d + t + 2 * t * d
            if self.path_mode == "dual":
                total += 3 * t * d + d                                   # sigmoid(theta), a + g * (y - a)
        updates = self.num_units
        total += (updates - (updates + s - 1) // s) * t * d              # p <- p + o (not at a block's start)
        total += (updates // s) * (3 * t * d + t)                        # 1/rms of each closed block
        return total

    def _record(self, r, state, a, alpha, g) -> None:
        with torch.no_grad():
            flat = alpha.detach().float().flatten(start_dim=1)
            entry = {"read": r, "num_sources": alpha.shape[0],
                     "alpha_mean": flat.mean(dim=1).cpu(), "alpha_std": flat.std(dim=1, unbiased=False).cpu(),
                     "read_to_identity": (a.norm() / state.y.norm().clamp_min(1e-12)).item()}
            if g is not None:
                entry["gate_mean"] = g.detach().float().reshape(-1, g.shape[-1]).mean(dim=0).cpu() \
                    if g.dim() else g.detach().float().cpu().expand(self.d_model)
            self.trace.append(entry)
