"""Parameter-free token mixing (RankMixer, arXiv 2507.15551; TokenMixer-Large, arXiv 2602.06563) and its inverse.

Mix: split each of the T tokens into H pieces of width d/H and let mixed token h gather piece h of every token,
    (B, T, d) -> (B, T, H, d/H) -> (B, H, T, d/H) -> (B, H, T*d/H).
Revert: the exact inverse (a pure permutation of entries, so Revert(Mix(x)) == x bit for bit).
With H = T (RankMixer) the mixed layout has the input's shape (B, T, d).
"""

import torch
from torch import nn


def token_mix(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, d) -> (B, H, T*d/H)."""
    b, t, d = x.shape
    return x.reshape(b, t, num_heads, d // num_heads).transpose(1, 2).reshape(b, num_heads, t * d // num_heads)


def token_revert(x: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(B, H, T*d/H) -> (B, T, d), the inverse of ``token_mix``."""
    b, h, w = x.shape
    return x.reshape(b, h, num_tokens, w // num_tokens).transpose(1, 2).reshape(b, num_tokens, h * w // num_tokens)


class TokenMixing(nn.Module):
    """Mix/Revert as a module with the shape checks (``d_model % num_heads == 0``) done once at build time."""

    def __init__(self, num_tokens: int, d_model: int, num_heads: int):
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            raise ValueError(f"token mixing splits each token into num_heads={num_heads} pieces: d_model={d_model} "
                             f"must be divisible by it (d_model % num_heads == {d_model % max(num_heads, 1)})")
        self.num_tokens, self.d_model, self.num_heads = num_tokens, d_model, num_heads
        self.mixed_width = num_tokens * d_model // num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return token_mix(x, self.num_heads)

    def revert(self, x: torch.Tensor) -> torch.Tensor:
        return token_revert(x, self.num_tokens)

    def flops(self, num_tokens: int) -> int:
        return 0                                                           # a permutation of memory

    def extra_repr(self) -> str:
        return f"tokens={self.num_tokens}, d_model={self.d_model}, heads={self.num_heads}"
