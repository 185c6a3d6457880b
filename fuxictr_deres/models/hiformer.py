"""HiFormer (Gui et al., Google, KDD'23, arXiv 2311.05884): heterogeneous self-attention over feature tokens with
token-specific Q_i, K_j, V_j, O projections, or the Hiformer layer (Section 4): token-specific queries with keys
and values from a low-rank composite projection of all tokens (``composite: kv``; ``qk`` is this project's earlier
composite Q/K form), in standard Pre-Norm Transformer layers. The configs use one token per feature (``tokenizer:
perfield``, T = F + 1 with the task token), as the paper does.

Simplifications [ours]: RMSNorm pre-norm and the shared MLP head/readout of the token backbone; no model-level
pruning beyond the last layer's task-token query."""

from typing import List, Optional, Tuple

import torch
from torch import nn

from ..layers import TokenAttention, TokenFFN
from ..layers.hetero_attention import CompositeAttention
from .token_ctr import TokenCTR


class TaskTokenTokenizer(nn.Module):
    """X0 = [tokenizer(e) (T - 1 tokens); t_task]: a learned task token appended as the last token."""

    def __init__(self, inner: nn.Module, d_model: int):
        super().__init__()
        self.inner = inner
        self.task = nn.Parameter(torch.empty(d_model))
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.normal_(self.task, std=0.02)

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        tokens = self.inner(field_emb)
        return torch.cat([tokens, self.task.expand(tokens.shape[0], 1, -1)], dim=1)


class HiFormer(TokenCTR):
    """HiFormer on the shared token backbone (attention and FFN units, ``residual: prenorm``).

    ``composite_rank`` r: the Hiformer layer, K and V (``composite: kv``, default) or Q and K (``qk``) from the
    low-rank composite projection; None: heterogeneous attention with token-specific Q/K/V/O. ``task_token``: the tokenizer makes T - 1 feature tokens plus a learned task token,
    and the last layer computes only the task token's query (its output is the readout).
    """

    default_residual = "prenorm"

    def __init__(self, feature_map, model_id: str = "HiFormer", composite_rank: Optional[int] = None,
                 composite: str = "kv", task_token: bool = False, **kwargs):
        super().__init__(feature_map, model_id=model_id, composite_rank=composite_rank, composite=composite,
                         task_token=task_token, **kwargs)

    def build_tokenizer(self, name: str, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int,
                        options: dict, task_token: bool = False, **kwargs) -> nn.Module:
        if not task_token:
            return super().build_tokenizer(name, num_fields, embedding_dim, num_tokens, d_model, options)
        if num_tokens < 2:
            raise ValueError(f"task_token needs num_tokens >= 2 (T - 1 feature tokens + the task token), "
                             f"got {num_tokens}")
        inner = super().build_tokenizer(name, num_fields, embedding_dim, num_tokens - 1, d_model, options)
        return TaskTokenTokenizer(inner, d_model)

    def build_units(self, num_tokens: int, d_model: int, num_layers: int, num_heads: int, ffn_ratio: float,
                    ffn_activation: str, token_specific: bool, causal: bool, attention_dropout: float,
                    net_dropout: float, composite_rank: Optional[int] = None, composite: str = "kv",
                    task_token: bool = False, **kwargs) -> Tuple[List[nn.Module], int, int]:
        units = []
        for layer in range(num_layers):
            queries = 1 if task_token and layer == num_layers - 1 else num_tokens
            if composite_rank:
                units.append(CompositeAttention(num_tokens, d_model, num_heads, composite_rank, attention_dropout,
                                                num_queries=queries, composite=composite))
            else:
                units.append(TokenAttention(num_tokens, d_model, num_heads, True, causal, attention_dropout,
                                            num_queries=queries))
            units.append(TokenFFN(queries, d_model, ffn_ratio, token_specific, ffn_activation, net_dropout))
        return units, 2, (1 if task_token else num_tokens)
