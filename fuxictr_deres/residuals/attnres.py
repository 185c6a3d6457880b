"""Attention Residuals (Kimi Team, arXiv 2603.15031), Full and Block, as configurations of the DeRes rule.

AttnRes is DeRes with the attention path only (``path_mode: attn``), softmax depth scores with tau = 1 and
beta = 0 (specs/deres.md: "the faithful AttnRes"); the depth attention is DeRes' BlockAttentionRead, not a second
implementation:

    attnres_full : N = U blocks of one unit: unit u attends over X0 and every earlier raw unit output
    attnres_block: N blocks whose summaries are the sums of their unit outputs; by default N = min(8, L) blocks of
                   layers (DeRes' default: 8 blocks at depth, one layer per block below 8 layers, where 8 blocks
                   of units would already be Full AttnRes); N >= U is Full AttnRes

Each read has its own zero-initialised pseudo-query (uniform average at step 0) and its own key RMSNorm; one more
read after the last unit aggregates everything before the final norm.
"""

from typing import Optional

from .deres import DeResResidual

_ATTNRES = dict(path_mode="attn", identity_mode="identity", score_fn="softmax", tau=1.0, beta=0.0, gate="static")


class AttnResBlockResidual(DeResResidual):
    """``residual: attnres_block``: Block AttnRes over ``num_blocks`` blocks (clamped to U: more blocks than units
    is Full AttnRes), or ``block_size`` layers per block; neither: min(8, L) blocks, as DeRes."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 num_blocks: Optional[int] = None, block_size: Optional[int] = None, per_token_query: bool = False,
                 eps: float = 1e-6):
        if block_size is not None:
            num_blocks = None
        elif num_blocks is not None:
            num_blocks = min(int(num_blocks), num_units)
        super().__init__(num_units, d_model, num_tokens, units_per_layer, num_blocks=num_blocks,
                         block_size=block_size, per_token_query=per_token_query, eps=eps, **_ATTNRES)


class AttnResFullResidual(DeResResidual):
    """``residual: attnres_full``: Full AttnRes, one block per unit (N = U)."""

    def __init__(self, num_units: int, d_model: int, num_tokens: int, units_per_layer: int = 2,
                 per_token_query: bool = False, eps: float = 1e-6):
        super().__init__(num_units, d_model, num_tokens, units_per_layer, num_blocks=num_units,
                         per_token_query=per_token_query, eps=eps, **_ATTNRES)
