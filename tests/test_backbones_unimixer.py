"""UniMixer / UniMixer-Lite (arXiv 2604.00590) and SiameseNorm (arXiv 2602.08064): Sinkhorn constraints, the
temperature schedule over a real fit, the rule's equations, inits that survive reset_parameters()."""

import os

import pytest
import torch

from conftest import build_model, toy_batch
from fuxictr_deres.layers.sinkhorn import sinkhorn, symmetrise
from fuxictr_deres.layers.uni_mixing import UniMixing
from fuxictr_deres.models import OneTrans, UniMixer, UniMixerLite
from fuxictr_deres.residuals import build_residual_rule


def assert_doubly_stochastic(p, tol=1e-3):
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones_like(p.sum(-1)), atol=tol, rtol=0)
    torch.testing.assert_close(p.sum(-2), torch.ones_like(p.sum(-2)), atol=tol, rtol=0)


def test_sinkhorn_is_doubly_stochastic_at_20_iterations():
    torch.manual_seed(0)
    assert_doubly_stochastic(sinkhorn(symmetrise(torch.randn(6, 8, 8))))
    sharp = sinkhorn(symmetrise(torch.randn(5, 5)) / 0.05)                          # large logits: no overflow
    assert torch.isfinite(sharp).all()
    torch.testing.assert_close(sharp.sum(-2), torch.ones(5))                        # columns last: exact


@pytest.mark.parametrize("lite", [False, True])
@pytest.mark.parametrize("tau", [1.0, 0.05])
def test_mixing_matrices_are_doubly_stochastic(lite, tau):
    mixing = UniMixing(num_tokens=4, d_model=8, lite=lite)
    with torch.no_grad():
        for p in mixing.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mixing.tau.fill_(tau)
    w_local, w_global = mixing.mixing_matrices()
    assert w_local.shape == (4, 8, 8) and w_global.shape == (4, 4)
    assert_doubly_stochastic(w_local)
    assert_doubly_stochastic(w_global)


def test_mixing_equation():
    mixing = UniMixing(num_tokens=3, d_model=4, block_size=6, norm=False)
    x = torch.randn(2, 3, 4)
    w_local, w_global = mixing.mixing_matrices()
    blocks = x.reshape(2, 2, 6)
    local = torch.stack([blocks[:, i] @ w_local[i] for i in range(2)], dim=1)
    torch.testing.assert_close(mixing(x), (w_global @ local).reshape(2, 3, 4))
    with pytest.raises(ValueError, match="block_size=5"):
        UniMixing(3, 4, block_size=5)


@pytest.mark.parametrize("model_class", [UniMixer, UniMixerLite])
def test_identity_inits_survive_reset_parameters(feature_map, model_class):
    model = build_model(model_class, feature_map)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    model.reset_parameters()
    mixing = model.units[0]
    w_local, _ = mixing.mixing_matrices()
    assert (w_local.diagonal(dim1=-2, dim2=-1) > 0.5).all()             # near-identity, not the uniform 1/b
    if not mixing.lite:
        _, w_global = mixing.mixing_matrices()
        assert (w_global.diagonal() > 0.5).all()
    for norm in [*model.rule.x_norms, *model.rule.y_norms, model.rule.final_norm]:
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))


def test_siamese_rule_follows_its_equations():
    rule = build_residual_rule("siamese", None, num_units=3, d_model=8, num_tokens=4)
    with torch.no_grad():
        for p in rule.parameters():
            p.uniform_(0.5, 1.5)
    units = [torch.nn.Linear(8, 8) for _ in range(3)]
    x0 = torch.randn(2, 4, 8)
    xbar, ybar = x0, x0
    for u, f in enumerate(units):
        o = f(xbar + rule.y_norms[u](ybar))
        xbar, ybar = rule.x_norms[u](xbar + o), ybar + o
    torch.testing.assert_close(rule.run(x0, units), xbar + rule.final_norm(ybar))


def test_siamese_on_a_shrinking_pyramid(feature_map):
    model = build_model(OneTrans, feature_map, residual="siamese", num_layers=2, pyramid_tokens=[2, 1])
    assert model.backbone(toy_batch(4)).shape == (4, 1, model.d_model)


def test_unit_norm_follows_the_rule(feature_map):
    assert isinstance(build_model(UniMixer, feature_map).units[1].norm, torch.nn.Identity)
    assert isinstance(build_model(UniMixer, feature_map, residual="prenorm").units[1].norm, torch.nn.RMSNorm)


def test_temperature_is_annealed_linearly_by_fit(feature_map):
    model = build_model(UniMixer, feature_map, tau_end=0.05)
    os.makedirs(model.model_dir, exist_ok=True)
    train = [toy_batch(16, seed=s) for s in range(3)]
    seen = []
    step = model.train_step
    model.train_step = lambda batch: (seen.append(None), step(batch), seen.__setitem__(-1, model.temperature))[1]
    model.fit(train, epochs=2, validation_data=[toy_batch(16, seed=9)])
    torch.testing.assert_close(torch.tensor(seen), torch.linspace(1.0, 0.05, 6))
    assert model.temperature < 1.0                                     # the best checkpoint's tau is restored
