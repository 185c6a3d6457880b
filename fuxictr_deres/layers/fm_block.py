"""One WuKong interaction layer (Zhang et al., ICML'24, arXiv 2403.02545).

    X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + res(X_i))      res = identity, or a linear map over tokens when
                                                               n_i != n_F + n_L
    FMB(X)  = reshape(MLP(LN(flatten(X (X^T Y)))))            Y in R^{n x k}: the optimised FM, O(n k d)
    LCB(X)  = W_L X                                           W_L in R^{n_L x n}: linear compression of tokens
"""

from typing import List

import torch
from torch import nn
from fuxictr.pytorch.layers import MLP_Block

from .. import flops_rules


class WuKongLayer(nn.Module):
    """(B, n, d) -> (B, n_F + n_L, d); LayerNorm over d per token [ours: the paper does not pin the axis]."""

    def __init__(self, num_tokens: int, d_model: int, fmb_tokens: int, lcb_tokens: int, fm_rank: int,
                 mlp_hidden_units: List[int], activation: str = "ReLU", dropout: float = 0.0):
        super().__init__()
        self.num_tokens, self.d_model = num_tokens, d_model
        self.fmb_tokens, self.lcb_tokens, self.fm_rank = fmb_tokens, lcb_tokens, fm_rank
        self.fm_y = nn.Parameter(torch.empty(num_tokens, fm_rank))
        self.fm_norm = nn.LayerNorm(num_tokens * fm_rank)
        self.mlp_dims = [num_tokens * fm_rank] + list(mlp_hidden_units) + [fmb_tokens * d_model]
        self.fm_mlp = MLP_Block(input_dim=num_tokens * fm_rank, hidden_units=list(mlp_hidden_units),
                                hidden_activations=activation, output_dim=fmb_tokens * d_model,
                                dropout_rates=dropout)
        self.lcb = nn.Linear(num_tokens, lcb_tokens, bias=False)
        out_tokens = fmb_tokens + lcb_tokens
        self.res_proj = nn.Linear(num_tokens, out_tokens, bias=False) if out_tokens != num_tokens else None
        self.norm = nn.LayerNorm(d_model)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.xavier_normal_(self.fm_y)
        self.fm_norm.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        xty = torch.einsum("bnd,nk->bdk", x, self.fm_y)
        fm = torch.einsum("bnd,bdk->bnk", x, xty).flatten(start_dim=1)
        fmb = self.fm_mlp(self.fm_norm(fm)).view(b, self.fmb_tokens, self.d_model)
        x_t = x.transpose(1, 2)                                   # linear maps over the token axis
        lcb = self.lcb(x_t).transpose(1, 2)
        res = x if self.res_proj is None else self.res_proj(x_t).transpose(1, 2)
        return self.norm(torch.cat([fmb, lcb], dim=1) + res)

    def flops(self, num_tokens: int) -> int:
        n, d, k = num_tokens, self.d_model, self.fm_rank
        out = self.fmb_tokens + self.lcb_tokens
        total = 2 * flops_rules.matmul(n, d, k) + flops_rules.layernorm(1, n * k)
        dims = self.mlp_dims
        total += sum(flops_rules.linear(1, a, b) + b for a, b in zip(dims[:-1], dims[1:])) - dims[-1]
        total += flops_rules.matmul(self.lcb_tokens, n, d)
        if self.res_proj is not None:
            total += flops_rules.matmul(out, n, d)
        return total + flops_rules.elementwise(out, d) + flops_rules.layernorm(out, d)
