"""Tokenizers: field embeddings e (B, F, E) -> tokens X0 (B, T, d).

AutoSplit is OneTrans' best non-sequential tokenizer (arXiv 2510.26104): one projection of the concatenated field
embeddings, split into T tokens. PerField gives each field its own token (T = F).
"""

import torch
from torch import nn

from .chunk_tokenizer import ChunkTokenizer
from .group_tokenizer import GroupTokenizer
from .token_linear import TokenLinear


class AutoSplitTokenizer(nn.Module):
    """X0 = split(Linear(concat(e_1..e_F)), T): one (F*E -> T*d) projection viewed as (B, T, d)."""

    def __init__(self, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int,
                 input_norm: bool = False):
        super().__init__()
        self.num_tokens, self.d_model = num_tokens, d_model
        in_dim = num_fields * embedding_dim
        self.input_norm = nn.RMSNorm(in_dim, eps=1e-6) if input_norm else nn.Identity()
        self.proj = nn.Linear(in_dim, num_tokens * d_model)

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        flat = self.input_norm(field_emb.flatten(start_dim=1))
        return self.proj(flat).view(-1, self.num_tokens, self.d_model)


class PerFieldTokenizer(nn.Module):
    """One token per field: X0_f = e_f W_f + b_f (a token-specific linear E -> d), so T = F."""

    def __init__(self, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int, **_):
        super().__init__()
        if num_tokens != num_fields:
            raise ValueError(f"tokenizer=perfield makes one token per field: num_tokens must equal the "
                             f"number of fields ({num_fields}), got num_tokens={num_tokens}")
        self.proj = TokenLinear(num_fields, embedding_dim, d_model, token_specific=True)

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        return self.proj(field_emb)


TOKENIZERS = {"autosplit": AutoSplitTokenizer, "perfield": PerFieldTokenizer, "chunk": ChunkTokenizer,
              "groups": GroupTokenizer}


def build_tokenizer(name: str, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int,
                    **options) -> nn.Module:
    """Build a tokenizer by its config name (``tokenizer: autosplit | perfield | chunk | groups``)."""
    key = str(name).lower()
    if key not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer={name!r}; expected one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[key](num_fields, embedding_dim, num_tokens, d_model, **options)
