"""Softmax over a short last dimension (attention over a few tokens, depth scores over a few blocks).

torch 2.13's CPU softmax kernel vectorises across the softmax dimension; below 16 entries it falls off that path
and is about 5x slower than the same softmax written with elementwise ops (forward 4.9 ms against 1.0 ms for
(4096, 8, 8) on one core; the backward 1.9 ms against 1.1 ms; docs/speed.md). ``softmax_last_dim`` takes the
written-out form there and torch's fused kernel everywhere else (16+ entries, CUDA).

    y = exp(x - max_j x_j) / sum_j exp(x - max_j x_j)        dL/dx = y * (g - <g, y>)
"""

import torch

#: below this many entries along the last dimension the written-out softmax is faster on CPU (docs/speed.md)
SHORT_SOFTMAX_MAX = 15


class ShortSoftmax(torch.autograd.Function):
    """Softmax over the last dimension from elementwise ops, with the closed-form backward
    dL/dx = y * (g - sum_j g_j y_j), saving only y (autograd of the written-out form would keep three tensors)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = (x - x.amax(dim=-1, keepdim=True)).exp_()
        y.div_(y.sum(dim=-1, keepdim=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        gy = grad * y
        return gy.addcmul_(y, gy.sum(dim=-1, keepdim=True), value=-1.0)


def softmax_last_dim(x: torch.Tensor) -> torch.Tensor:
    """softmax(x, dim=-1), by ``ShortSoftmax`` for short rows on CPU and by torch's kernel otherwise."""
    if x.device.type == "cpu" and x.shape[-1] <= SHORT_SOFTMAX_MAX and x.dtype in (torch.float32, torch.float64):
        return ShortSoftmax.apply(x)
    return torch.softmax(x, dim=-1)
