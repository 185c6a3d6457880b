"""Tokenizers: field embeddings e (B, F, E) -> tokens X0 (B, T, d).

AutoSplit is OneTrans' best non-sequential tokenizer (arXiv 2510.26104): one projection of the concatenated field
embeddings, split into T tokens. PerField gives each field its own token (T = F).
``input_norm: true`` (any tokenizer) RMS-normalises the concatenated field embeddings before tokenizing.
"""

import torch
from torch import nn

from .chunk_tokenizer import ChunkTokenizer
from .group_tokenizer import GroupTokenizer
from .token_linear import TokenLinear


class AutoSplitTokenizer(nn.Module):
    """X0 = split(Linear(concat(e_1..e_F)), T): one (F*E -> T*d) projection viewed as (B, T, d)."""

    def __init__(self, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int):
        super().__init__()
        self.num_tokens, self.d_model = num_tokens, d_model
        self.proj = nn.Linear(num_fields * embedding_dim, num_tokens * d_model)

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        return self.proj(field_emb.flatten(start_dim=1)).view(-1, self.num_tokens, self.d_model)


class InputNormTokenizer(nn.Module):
    """tokenizer(RMSNorm(concat(e_1..e_F))): the field embeddings at unit RMS per sample before any tokenizer.

    FuxiCTR initialises embeddings at std 1e-4, so without it X0 starts (and stays) tiny: its mean square
    (about 1e-8) is far below the RMSNorm eps of the first unit, whose norm is then not scale-invariant.
    """

    def __init__(self, tokenizer: nn.Module, num_fields: int, embedding_dim: int):
        super().__init__()
        self.input_norm = nn.RMSNorm(num_fields * embedding_dim, eps=1e-12)
        self.tokenizer = tokenizer

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        return self.tokenizer(self.input_norm(field_emb.flatten(start_dim=1)).view_as(field_emb))


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
                    input_norm: bool = False, **options) -> nn.Module:
    """Build a tokenizer by its config name (``tokenizer: autosplit | perfield | chunk | groups``), behind an
    input RMSNorm when ``input_norm`` is set."""
    key = str(name).lower()
    if key not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer={name!r}; expected one of {sorted(TOKENIZERS)}")
    tokenizer = TOKENIZERS[key](num_fields, embedding_dim, num_tokens, d_model, **options)
    return InputNormTokenizer(tokenizer, num_fields, embedding_dim) if input_norm else tokenizer
