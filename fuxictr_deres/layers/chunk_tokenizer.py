"""Chunk tokenizer (RankMixer, arXiv 2507.15551): cut concat(e_1..e_F) into T equal chunks and project each
chunk to d with its own linear: X0_t = chunk_t W_t + b_t."""

import torch
from torch import nn

from .token_linear import TokenLinear


class ChunkTokenizer(nn.Module):
    """(B, F, E) -> (B, T, d); requires num_fields * embedding_dim divisible by num_tokens."""

    def __init__(self, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int):
        super().__init__()
        in_dim = num_fields * embedding_dim
        if in_dim % num_tokens != 0:
            divisors = [t for t in range(1, min(in_dim, 64) + 1) if in_dim % t == 0]
            raise ValueError(f"tokenizer=chunk cuts the {num_fields} fields x embedding_dim={embedding_dim} = "
                             f"{in_dim} embedding values into num_tokens={num_tokens} equal chunks, but {in_dim} is "
                             f"not divisible by {num_tokens}; choose num_tokens from {divisors} or change "
                             f"embedding_dim")
        self.num_tokens, self.chunk = num_tokens, in_dim // num_tokens
        self.proj = TokenLinear(num_tokens, self.chunk, d_model, token_specific=True)

    def forward(self, field_emb: torch.Tensor) -> torch.Tensor:
        return self.proj(field_emb.reshape(field_emb.shape[0], self.num_tokens, self.chunk))

    def flops(self, num_tokens: int) -> int:
        return self.proj.flops(self.num_tokens)
