"""Conventions of the analytic FLOP count (specs/measurement.md): forward FLOPs per sample.

A multiply-add counts 2 (a (m x k) @ (k x n) product is 2 m k n), every other elementwise operation counts 1 per
element it produces (add, multiply, activation, exp, rsqrt), a reduction counts 1 per input element, embedding
look-ups count 0. Units and residual rules report their own count through a ``flops`` method:

    unit.flops(num_tokens: int) -> int         forward FLOPs per sample of one unit on num_tokens input tokens
    rule.flops(num_tokens: int) -> int         the rule's own work over the whole depth (reads, gates, adds)

``torch.utils.flop_counter.FlopCounterMode`` counts only matmul-family ops; the analytic count adds the
elementwise terms, so it is the larger of the two by the elementwise share.
"""


def matmul(m: int, k: int, n: int) -> int:
    """(m x k) @ (k x n)."""
    return 2 * m * k * n


def linear(tokens: int, d_in: int, d_out: int, bias: bool = True) -> int:
    """A linear map of ``tokens`` rows (token-specific or shared: the same count)."""
    return matmul(tokens, d_in, d_out) + (tokens * d_out if bias else 0)


def rmsnorm(tokens: int, d: int, gain: bool = True) -> int:
    """square, mean (reduction), rsqrt, scale, gain."""
    return tokens * d * (3 + gain) + tokens


def layernorm(tokens: int, d: int, affine: bool = True) -> int:
    """mean, subtract, square, mean, rsqrt, scale (+ gain and bias)."""
    return tokens * d * (4 + 2 * affine) + 2 * tokens


def elementwise(tokens: int, d: int, ops: int = 1) -> int:
    """``ops`` elementwise operations on a (tokens x d) tensor."""
    return tokens * d * ops
