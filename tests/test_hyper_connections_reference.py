"""HC and mHC against the reference package `hyper-connections` (lucidrains, PyPI 0.4.x; test-only dependency).

Parameters are copied from the package's modules into ours and one residual step (or a whole stack) is compared.

- HC: the package's HyperConnections (tanh=True, num_fracs=1, one input view) defines the same map as ours,
  static and dynamic: [A_m | A_r] = static_alpha, B = static_beta, W = dynamic_*_fn, s = dynamic_*_scale, norm gain
  = gamma + 1. Compared on whole stacks (expand -> units -> sum of streams).
- mHC, static (phi = 0): the same map (H_pre = sigmoid(b_pre), H_post = 2 sigmoid(b_post), H_res = Sinkhorn(b_res)
  with H_res = their residual block transposed). Compared on whole stacks.
- mHC, dynamic: the package normalises and projects each stream on its own (RMSNorm(x_s) @ W, shared over
  streams), the paper (and we) the flattened n d vector with one fused phi. The maps coincide when phi is the
  block-structured matrix built from their W and every stream of a token has the same RMS (then the per-stream and
  flattened norms agree), so one step is compared on such inputs. Off that set the two are different maps.
"""

import pytest
import torch
from einops import rearrange
from torch import nn

hyper_connections = pytest.importorskip("hyper_connections")
from hyper_connections.hyper_connections import HyperConnections  # noqa: E402
from hyper_connections.manifold_constrained_hyper_connections import ManifoldConstrainedHyperConnections  # noqa: E402

from fuxictr_deres.residuals import build_residual_rule  # noqa: E402
from fuxictr_deres.residuals.hyper_connections import StreamState  # noqa: E402

B, T, N, D, U = 3, 5, 4, 8, 5


def to_theirs(h):
    return rearrange(h, "b t s d -> (b s) t d")


def from_theirs(h):
    return rearrange(h, "(b s) t d -> b t s d", s=N)


def perturb(module, std=0.5):
    torch.manual_seed(11)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))


def make_units(seed=5):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.RMSNorm(D), nn.Linear(D, D)) for _ in range(U)]


def run_theirs(refs, x0, units):
    h = to_theirs(x0.unsqueeze(-2).expand(B, T, N, D))           # the package's expand: n copies of X0
    for ref, unit in zip(refs, units):
        branch_input, add_residual = ref(h)
        h = add_residual(unit(branch_input))
    return from_theirs(h).sum(dim=-2)                              # the package's reduce: sum of the streams


# ---------------------------------------------------------------- HC

def copy_hc(refs, rule):
    with torch.no_grad():
        for u, ref in enumerate(refs):
            rule.static_alpha[u].copy_(ref.static_alpha)
            rule.static_beta[u].copy_(ref.static_beta)
            if rule.dynamic:
                rule.dynamic_alpha[u].copy_(ref.dynamic_alpha_fn)
                rule.dynamic_beta[u].copy_(ref.dynamic_beta_fn)
                rule.alpha_scale[u].copy_(ref.dynamic_alpha_scale)
                rule.beta_scale[u].copy_(ref.dynamic_beta_scale)
                rule.norm_gain[u].copy_(ref.norm.gamma + 1)


@pytest.mark.parametrize("dynamic", [False, True])
def test_hc_initialisation_matches_the_package(dynamic):
    refs = [HyperConnections(N, dim=D, layer_index=u, tanh=True) for u in range(U)]
    rule = build_residual_rule("hc", {"dynamic": dynamic}, U, D, T)
    for u, ref in enumerate(refs):
        assert torch.equal(rule.static_alpha[u], ref.static_alpha)
        assert torch.equal(rule.static_beta[u], ref.static_beta)
        if dynamic:
            assert torch.equal(rule.dynamic_alpha[u], ref.dynamic_alpha_fn)
            assert torch.equal(rule.dynamic_beta[u], ref.dynamic_beta_fn)
            assert rule.alpha_scale[u] == ref.dynamic_alpha_scale and rule.beta_scale[u] == ref.dynamic_beta_scale
            assert torch.equal(rule.norm_gain[u], ref.norm.gamma + 1)


def assert_step_and_stack_match(refs, rule, unit_index):
    """One residual step of unit ``unit_index`` on arbitrary streams, then the whole stack (expand, U units,
    sum of streams), ours against the package's."""
    units = make_units()
    torch.manual_seed(0)
    h = torch.randn(B, T, N, D)
    branch_input, add_residual = refs[unit_index](to_theirs(h))
    state = StreamState(h)
    mine_input = rule.unit_input(state, unit_index)
    torch.testing.assert_close(mine_input, branch_input, rtol=1e-5, atol=1e-5)
    out = units[unit_index](mine_input)
    torch.testing.assert_close(rule.update(state, unit_index, out).h, from_theirs(add_residual(out)),
                               rtol=1e-5, atol=1e-5)
    x0 = torch.randn(B, T, D)
    torch.testing.assert_close(rule.run(x0, units), run_theirs(refs, x0, units), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dynamic", [False, True])
def test_hc_matches_the_package_step_and_stack(dynamic):
    refs = nn.ModuleList(HyperConnections(N, dim=D, layer_index=u, tanh=True) for u in range(U))
    perturb(refs)
    if not dynamic:                         # static HC: the package with its dynamic weights at zero
        with torch.no_grad():
            for ref in refs:
                ref.dynamic_alpha_fn.zero_()
                ref.dynamic_beta_fn.zero_()
    rule = build_residual_rule("hc", {"dynamic": dynamic, "eps": 1e-12}, U, D, T)
    copy_hc(refs, rule)
    assert_step_and_stack_match(refs, rule, 2)


# ---------------------------------------------------------------- mHC

def copy_mhc(refs, rule):
    """Static part: b_pre = their pre-branch column, b_res = their residual block TRANSPOSED (they mix as
    H'_t = sum_s R[s, t] H_s, we as H' = H_res H), b_post = their beta. Dynamic part: the block-structured phi
    that reproduces their per-stream projections, with their norm gain folded in."""
    n, d = N, D
    with torch.no_grad():
        for u, ref in enumerate(refs):
            rule.b_pre[u].copy_(ref.static_alpha[:, 0])
            rule.b_res[u].copy_(ref.static_alpha[:, 1:].T)
            rule.b_post[u].copy_(ref.static_beta)
            if not rule.dynamic:
                continue
            rule.scales[u].copy_(torch.stack([ref.pre_branch_scale[0], ref.h_post_scale, ref.residual_scale[0]]))
            w = ref.dynamic_alpha_fn[0] * (ref.norm.gamma + 1).unsqueeze(-1)   # (d, 1 + n)
            w_beta = ref.dynamic_beta_fn * (ref.norm.gamma + 1)                 # (d,)
            phi = torch.zeros(n, d, 2 * n + n * n)
            for s in range(n):
                phi[s, :, s] = w[:, 0]                                          # pre: stream s's own score
                phi[s, :, n + s] = w_beta                                       # post
                for t in range(n):
                    phi[s, :, 2 * n + t * n + s] = w[:, 1 + t]                  # H_res[t, s] = R[s, t]
            rule.phi[u].copy_(phi.reshape(n * d, -1))


@pytest.mark.parametrize("log_domain", [False, True])
def test_static_mhc_matches_the_package_step_and_stack(log_domain):
    refs = nn.ModuleList(ManifoldConstrainedHyperConnections(N, dim=D, layer_index=u, sinkhorn_iters=20,
                                                             log_domain_sinkhorn=log_domain) for u in range(U))
    perturb(refs)
    with torch.no_grad():                  # static mHC = the package with its dynamic weights at zero (phi = 0)
        for ref in refs:
            ref.dynamic_alpha_fn.zero_()
            ref.dynamic_beta_fn.zero_()
    rule = build_residual_rule("mhc", {"dynamic": False}, U, D, T)
    copy_mhc(refs, rule)
    assert_step_and_stack_match(refs, rule, 1)


@pytest.mark.parametrize("log_domain", [False, True])
def test_dynamic_mhc_matches_the_package_on_equal_rms_streams(log_domain):
    refs = nn.ModuleList(ManifoldConstrainedHyperConnections(N, dim=D, layer_index=u, sinkhorn_iters=20,
                                                             log_domain_sinkhorn=log_domain) for u in range(U))
    perturb(refs)
    with torch.no_grad():                  # make the dynamic terms matter: scales well above 0.01
        for ref in refs:
            ref.pre_branch_scale.fill_(0.3)
            ref.residual_scale.fill_(0.2)
            ref.h_post_scale.fill_(0.4)
    rule = build_residual_rule("mhc", {"eps": 1e-12}, U, D, T)
    copy_mhc(refs, rule)
    unit = make_units()[3]

    torch.manual_seed(0)
    h = torch.randn(B, T, N, D)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True)) * torch.rand(B, T, 1, 1).add(0.5)   # equal RMS per token
    branch_input, add_residual = refs[3](to_theirs(h))
    state = StreamState(h)
    mine_input = rule.unit_input(state, 3)
    torch.testing.assert_close(mine_input, branch_input, rtol=1e-5, atol=1e-5)
    out = unit(mine_input)
    torch.testing.assert_close(rule.update(state, 3, out).h, from_theirs(add_residual(out)), rtol=1e-5, atol=1e-5)

    # the dynamic terms are really in play: zeroing phi changes the result
    with torch.no_grad():
        rule.phi.zero_()
    assert not torch.allclose(rule.unit_input(StreamState(h), 3), branch_input, atol=1e-3)


def test_sinkhorn_matches_the_package():
    from hyper_connections.manifold_constrained_hyper_connections import (log_domain_sinkhorn_knopps,
                                                                         sinkhorn_knopps)
    from fuxictr_deres.layers.sinkhorn import sinkhorn
    torch.manual_seed(0)
    logits = torch.randn(32, N, N) * 2
    # theirs normalises columns (dim -2) first on R; ours rows first on H_res = R^T
    ours = sinkhorn(logits.transpose(-1, -2), iters=20).transpose(-1, -2)
    torch.testing.assert_close(ours, log_domain_sinkhorn_knopps(logits, iters=20), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, sinkhorn_knopps(logits, iters=20), rtol=1e-4, atol=1e-5)
