"""Groups + global token tokenizer (TokenMixer-Large, arXiv 2602.06563).

X0 = [MLP_1(concat(e_f, f in G_1)); ...; MLP_{T-1}(concat(e_f, f in G_{T-1})); MLP_g(concat(e_1..e_F))]:
one token per field group from that group's own MLP, plus one global token from an MLP over all fields (last).
"""

from typing import List, Optional, Sequence

import torch
from torch import nn

from .. import flops_rules
from .token_linear import TokenLinear


def contiguous_groups(num_fields: int, num_groups: int) -> List[List[int]]:
    """Split fields 0..F-1 into ``num_groups`` contiguous groups whose sizes differ by at most one."""
    if not 1 <= num_groups <= num_fields:
        raise ValueError(f"tokenizer=groups needs 1 <= number of groups <= number of fields ({num_fields}), "
                         f"got {num_groups} groups")
    bounds = [round(i * num_fields / num_groups) for i in range(num_groups + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(num_groups)]


class GroupTokenizer(nn.Module):
    """(B, F, E) -> (B, T, d): T-1 group tokens + 1 global token (``global_token=False``: T group tokens).

    ``groups``: field indices per group (every field exactly once); default contiguous groups of near-equal size.
    Each MLP is Linear -> activation -> Linear with hidden width ``hidden_dim`` (default d) [ours: the paper gives
    no sizes]. Groups of unequal size are zero-padded to the largest so all group MLPs run as one batched einsum;
    the padded inputs are zeros, so the padding weights never act.
    """

    def __init__(self, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int,
                 groups: Optional[Sequence[Sequence[int]]] = None, global_token: bool = True,
                 hidden_dim: Optional[int] = None, activation: str = "gelu"):
        super().__init__()
        num_groups = num_tokens - 1 if global_token else num_tokens
        if groups is None:
            groups = contiguous_groups(num_fields, num_groups)
        groups = [list(g) for g in groups]
        if len(groups) != num_groups:
            raise ValueError(f"tokenizer_params.groups has {len(groups)} groups; num_tokens={num_tokens} with "
                             f"global_token={global_token} needs {num_groups}")
        flat = sorted(f for g in groups for f in g)
        if flat != list(range(num_fields)) or any(not g for g in groups):
            raise ValueError(f"tokenizer_params.groups must list every field index 0..{num_fields - 1} exactly once "
                             f"in non-empty groups, got {groups}")
        width = max(len(g) for g in groups)
        index = torch.tensor([g + [num_fields] * (width - len(g)) for g in groups])   # index F = the zero field
        self.register_buffer("index", index, persistent=False)
        self.embedding_dim, self.group_width, self.global_token = embedding_dim, width, global_token
        hidden = hidden_dim or d_model
        act = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}[activation]
        self.group_up = TokenLinear(num_groups, width * embedding_dim, hidden)
        self.group_act = act()
        self.group_down = TokenLinear(num_groups, hidden, d_model)
        if global_token:
            self.global_mlp = nn.Sequential(nn.Linear(num_fields * embedding_dim, hidden), act(),
                                            nn.Linear(hidden, d_model))

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        b = field_emb.shape[0]
        padded = torch.cat([field_emb, field_emb.new_zeros(b, 1, self.embedding_dim)], dim=1)
        grouped = padded[:, self.index].reshape(b, self.index.shape[0], -1)
        tokens = self.group_down(self.group_act(self.group_up(grouped)))
        if not self.global_token:
            return tokens
        return torch.cat([tokens, self.global_mlp(field_emb.flatten(start_dim=1)).unsqueeze(1)], dim=1)

    def flops(self, num_tokens: int) -> int:
        g = self.index.shape[0]
        total = (self.group_up.flops(g) + flops_rules.elementwise(g, self.group_up.d_out)
                 + self.group_down.flops(g))
        if self.global_token:
            up, down = self.global_mlp[0], self.global_mlp[2]
            total += (flops_rules.linear(1, up.in_features, up.out_features)
                      + flops_rules.elementwise(1, up.out_features)
                      + flops_rules.linear(1, down.in_features, down.out_features))
        return total
