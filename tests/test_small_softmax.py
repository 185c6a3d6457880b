"""The short-row softmax equals torch.softmax in value and gradient, and is used exactly where it should be."""

import pytest
import torch

from fuxictr_deres.layers import small_softmax
from fuxictr_deres.layers.attention import TokenAttention
from fuxictr_deres.layers.small_softmax import SHORT_SOFTMAX_MAX, ShortSoftmax, softmax_last_dim


@pytest.mark.parametrize("n", [1, 2, 4, 8, SHORT_SOFTMAX_MAX])
def test_forward_and_gradient_equal_torch_softmax(n):
    g = torch.Generator().manual_seed(n)
    x = (3 * torch.randn(64, 5, n, generator=g)).requires_grad_()
    upstream = torch.randn(64, 5, n, generator=g)
    ours = softmax_last_dim(x)
    (grad_ours,) = torch.autograd.grad(ours, x, upstream)
    ref = torch.softmax(x, dim=-1)
    (grad_ref,) = torch.autograd.grad(ref, x, upstream)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-5, atol=1e-6)  # float rounding of the sums


def test_causal_minus_inf_mask_gives_zero_weight_and_gradient():
    scores = torch.randn(16, 8, 8, dtype=torch.float64)
    mask = torch.ones(8, 8, dtype=torch.bool).tril()
    x = scores.masked_fill(~mask, float("-inf")).requires_grad_()
    y = softmax_last_dim(x)
    assert torch.isfinite(y).all()
    assert (y[:, ~mask] == 0).all()
    torch.testing.assert_close(y.sum(-1), torch.ones(16, 8, dtype=torch.float64))
    (grad,) = torch.autograd.grad(y, x, torch.randn_like(y))
    assert (grad[:, ~mask] == 0).all()
    torch.testing.assert_close(y, torch.softmax(x, dim=-1))


def test_large_logits_do_not_overflow():
    x = torch.tensor([[1000.0, 999.0, -1000.0]])
    torch.testing.assert_close(softmax_last_dim(x), torch.softmax(x, dim=-1))


def test_gradcheck_float64():
    x = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ShortSoftmax.apply, (x,))
    assert torch.autograd.gradgradcheck(ShortSoftmax.apply, (x,))


def test_dispatch_by_length_and_dtype(monkeypatch):
    calls = []
    real = ShortSoftmax.apply
    monkeypatch.setattr(ShortSoftmax, "apply", lambda x: calls.append(x.shape) or real(x))
    softmax_last_dim(torch.randn(2, SHORT_SOFTMAX_MAX))
    softmax_last_dim(torch.randn(2, SHORT_SOFTMAX_MAX + 1))      # long rows: torch's kernel
    softmax_last_dim(torch.randn(2, 4, dtype=torch.bfloat16))     # bf16: torch's kernel (keeps its accumulation)
    assert calls == [torch.Size([2, SHORT_SOFTMAX_MAX])]


def test_explicit_attention_uses_it_and_matches_sdpa(monkeypatch):
    torch.manual_seed(0)
    unit = TokenAttention(num_tokens=8, d_model=32, num_heads=4, causal=True, attention_impl="explicit")
    h = torch.randn(5, 8, 32)
    used = []
    real = small_softmax.ShortSoftmax.apply
    monkeypatch.setattr(small_softmax.ShortSoftmax, "apply", lambda x: used.append(True) or real(x))
    explicit = unit(h)
    unit.attention_impl = "sdpa"
    torch.testing.assert_close(explicit, unit(h), rtol=1e-5, atol=1e-6)
    assert used == [True]
