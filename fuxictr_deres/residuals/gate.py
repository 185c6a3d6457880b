"""Vector-wise gate of DeRes (arXiv 2606.07980): g = sigmoid(theta) in (0, 1)^d weighs identity vs attention path."""

import torch
from torch import nn

GATE_MODES = ("static", "static_token", "dynamic_lowrank", "fixed")


class VectorGate(nn.Module):
    """Per-dimension gate g for h = g * y + (1 - g) * a.

    ``static``: theta in R^d, init 0 (g = 0.5). ``static_token``: theta in R^{T x d}. ``dynamic_lowrank``:
    theta + U D (y / rms(y)) with rank r <= 4 and U initialised to 0 (starts as static). ``fixed``: the constant
    ``value`` (no parameters).
    """

    def __init__(self, mode: str, d_model: int, num_tokens: int, value: float = 0.5, rank: int = 4,
                 eps: float = 1e-6):
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"unknown gate={mode!r}; expected one of {list(GATE_MODES)}")
        if mode == "dynamic_lowrank" and not 1 <= rank <= 4:
            raise ValueError(f"gate_rank={rank}: the dynamic gate's rank must be between 1 and 4")
        if mode == "fixed" and not 0.0 <= value <= 1.0:
            raise ValueError(f"gate_value={value}: a fixed gate must lie in [0, 1]")
        self.mode, self.value, self.eps = mode, float(value), eps
        if mode != "fixed":
            self.theta = nn.Parameter(torch.zeros((num_tokens, d_model) if mode == "static_token" else (d_model,)))
        if mode == "dynamic_lowrank":
            self.down = nn.Parameter(torch.empty(d_model, rank))
            self.up = nn.Parameter(torch.zeros(rank, d_model))
        self.init_weights()

    def init_weights(self) -> None:
        """theta = 0 (g = 1/2); the dynamic gate's up-projection = 0 so it starts static."""
        with torch.no_grad():
            if self.mode != "fixed":
                self.theta.zero_()
            if self.mode == "dynamic_lowrank":
                nn.init.normal_(self.down, std=self.down.shape[0] ** -0.5)
                self.up.zero_()

    @property
    def initial_value(self) -> float:
        """g at init (uniform over dimensions): 1/2 for the learnt gates, ``value`` for the fixed one."""
        return self.value if self.mode == "fixed" else 0.5

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Gate values broadcastable to y (B, T, d)."""
        if self.mode == "fixed":
            return torch.full((), self.value, dtype=y.dtype, device=y.device)
        theta = self.theta
        if self.mode == "static_token":
            theta = theta[theta.shape[0] - y.shape[1]:]
        if self.mode == "dynamic_lowrank":
            yn = y * torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + self.eps)
            theta = theta + (yn @ self.down) @ self.up
        return torch.sigmoid(theta)


class GateMix(torch.autograd.Function):
    """h = c * (g * y + (1 - g) * a) for states a, y (B, T, d) and a gate g broadcastable to them, with the
    closed-form backward grad a = c (1 - g) grad h, grad y = c g grad h, grad g = c sum (y - a) grad h (summed
    to g's shape). Written by hand because ``lerp`` then ``* c`` allocate two (B, T, d) results forward and five
    backward (the lerp's two, its weight's y - a and product, the scale's); here one forward, three backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, y: torch.Tensor, g: torch.Tensor, scale: float) -> torch.Tensor:
        w_y = g * scale
        w_a = (1.0 - g) * scale
        ctx.save_for_backward(a, y, w_a, w_y)
        ctx.scale, ctx.gate_shape = scale, g.shape
        return (a * w_a).addcmul_(y, w_y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        a, y, w_a, w_y = ctx.saved_tensors
        grad_a = grad * w_a if ctx.needs_input_grad[0] else None
        grad_y = grad * w_y if ctx.needs_input_grad[1] else None
        grad_g = None
        if ctx.needs_input_grad[2]:
            grad_g = (y - a).mul_(grad).sum_to_size(ctx.gate_shape) * ctx.scale
        return grad_a, grad_y, grad_g, None


def gate_mix(a: torch.Tensor, y: torch.Tensor, g: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """scale * (g * y + (1 - g) * a), DeRes' dual-path mix (see GateMix)."""
    return GateMix.apply(a, y, g, scale)
