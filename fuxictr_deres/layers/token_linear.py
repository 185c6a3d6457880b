"""A linear map applied per token, with token-specific (OneTrans, arXiv 2510.26104) or shared weights."""

import math

import torch
from torch import nn

from .. import flops_rules as flop_rules


class TokenLinear(nn.Module):
    """y_t = x_t W_t + b_t for every token t of x (B, T, d_in).

    With ``token_specific=True`` each token has its own (d_in, d_out) weight, stored as one (T, d_in, d_out)
    tensor and applied as one batched matmul over the tokens (never a Python loop over tokens). With ``False`` one
    weight is shared by all tokens.

    FuxiCTR's ``reset_parameters()`` only re-initialises ``nn.Linear``/``nn.Conv1d``, so this module
    initialises itself in ``init_weights()``: xavier-normal per token (fan_in = d_in, fan_out = d_out),
    scaled by ``init_scale`` (TokenMixer-Large's x0.01 down projections), zero bias.
    """

    def __init__(self, num_tokens: int, d_in: int, d_out: int, token_specific: bool = True,
                 bias: bool = True, init_scale: float = 1.0):
        super().__init__()
        self.num_tokens, self.d_in, self.d_out = num_tokens, d_in, d_out
        self.token_specific = token_specific
        self.init_scale = init_scale
        shape = (num_tokens, d_in, d_out) if token_specific else (d_in, d_out)
        self.weight = nn.Parameter(torch.empty(shape))
        bias_shape = (num_tokens, d_out) if token_specific else (d_out,)
        self.bias = nn.Parameter(torch.zeros(bias_shape)) if bias else None
        self.init_weights()

    def init_weights(self) -> None:
        std = self.init_scale * math.sqrt(2.0 / (self.d_in + self.d_out))
        with torch.no_grad():
            self.weight.normal_(0.0, std)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in) -> (B, T, d_out); the result is a view of a token-major (T, B, d_out) tensor when the
        weights are token-specific (see ``forward_token_major``)."""
        if self.token_specific:
            return self.forward_token_major(x.transpose(0, 1)).transpose(0, 1)
        y = torch.matmul(x, self.weight)
        return y + self.bias if self.bias is not None else y

    def forward_token_major(self, xt: torch.Tensor) -> torch.Tensor:
        """(T, B, d_in) -> (T, B, d_out) contiguous.

        Token-specific weights are one ``baddbmm`` with the tokens as its batch: no layout copy when ``xt`` is
        contiguous (the token-major layout of the backbone) and the bias add fused into the product. The einsum
        "btd,tde->bte" it replaces ran the same bmm on a strided view plus a separate bias pass; measured in
        docs/speed.md.
        """
        if not self.token_specific:
            y = torch.matmul(xt, self.weight)
            return y + self.bias if self.bias is not None else y
        t = xt.shape[0]
        # A pyramid backbone feeds only the last T' tokens: use their weights.
        weight = self.weight[-t:] if t != self.num_tokens else self.weight
        if self.bias is None:
            return torch.bmm(xt, weight)
        bias = self.bias[-t:] if t != self.num_tokens else self.bias
        return torch.baddbmm(bias.unsqueeze(1), xt, weight)

    def flops(self, num_tokens: int) -> int:
        return flop_rules.linear(num_tokens, self.d_in, self.d_out, self.bias is not None)

    def extra_repr(self) -> str:
        return (f"tokens={self.num_tokens}, d_in={self.d_in}, d_out={self.d_out}, "
                f"token_specific={self.token_specific}, bias={self.bias is not None}")
