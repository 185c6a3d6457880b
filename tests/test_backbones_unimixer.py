"""UniMixer / UniMixer-Lite (arXiv 2604.00590) and SiameseNorm (arXiv 2602.08064): Sinkhorn constraints, the
temperature schedule over a real fit, the rule's equations, inits that survive reset_parameters()."""

import os

import pytest
import torch

from conftest import CONFIG, build_model, toy_batch
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
    mixing = UniMixing(num_tokens=4, d_model=8, lite=lite)                    # b = d / T = 2, n = 16 blocks
    with torch.no_grad():
        for p in mixing.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mixing.tau.fill_(tau)
    w_local, w_global = mixing.mixing_matrices()
    assert w_local.shape == (16, 2, 2) and w_global.shape == (16, 16)
    # near a permutation (tau 0.05) Sinkhorn's rows converge slowly: up to ~3e-2 off at 20 iterations (sinkhorn.py)
    tol = 1e-3 if tau == 1.0 else 3e-2
    assert_doubly_stochastic(w_local, tol)
    assert_doubly_stochastic(w_global, tol)


def test_mixing_equation():
    mixing = UniMixing(num_tokens=3, d_model=4, block_size=6, norm=False, mixing_init="identity")
    x = torch.randn(2, 3, 4)
    w_local, w_global = mixing.mixing_matrices()
    blocks = x.reshape(2, 2, 6)
    local = torch.stack([blocks[:, i] @ w_local[i] for i in range(2)], dim=1)
    torch.testing.assert_close(mixing(x), (w_global @ local).reshape(2, 3, 4))
    with pytest.raises(ValueError, match="block_size=5"):
        UniMixing(3, 4, block_size=5)
    with pytest.raises(ValueError, match="mixing_init=tokenmixer needs block_size"):
        UniMixing(3, 4, block_size=6, mixing_init="tokenmixer")


@pytest.mark.parametrize("model_class", [UniMixer, UniMixerLite])
def test_identity_inits_survive_reset_parameters(feature_map, model_class):
    model = build_model(model_class, feature_map)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    model.reset_parameters()
    mixing = model.units[0]
    w_local, w_global = mixing.mixing_matrices()
    ref_local, ref_global = mixing.initial_matrices()
    torch.testing.assert_close(w_local, ref_local, atol=0.02, rtol=0)    # the init up to its N(0, 0.01) noise
    torch.testing.assert_close(w_global, ref_global, atol=0.02, rtol=0)
    if mixing.lite:
        assert torch.count_nonzero(mixing.global_b) == 0                 # A B = 0: uniform, B learns first
    else:                                                                # a weak TokenMixer prior, not 4 I
        pattern = mixing.global_pattern.bool()
        assert (w_global[pattern] > w_global[~pattern].max()).all() and w_global.max() < 0.5
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


def test_default_block_width_expresses_the_tokenmixer_shuffle():
    """b = d / T: with W_B = I and W_G = the TokenMixer permutation, UniMixing is RankMixer's token mixing."""
    from fuxictr_deres.layers.mixing import token_mix
    t, d = 4, 8
    mixing = UniMixing(num_tokens=t, d_model=d, norm=False)
    assert mixing.block == d // t and mixing.num_blocks == t * t
    with torch.no_grad():
        mixing.local_logits.copy_(100 * torch.eye(mixing.block).expand_as(mixing.local_logits))
        mixing.global_logits.copy_(100 * mixing.global_pattern)
    x = torch.randn(3, t, d)
    torch.testing.assert_close(mixing(x), token_mix(x, t).reshape(3, t, d), atol=1e-5, rtol=0)


def test_mixing_logits_get_their_own_learning_rate(feature_map):
    model = build_model(UniMixer, feature_map, learning_rate=1e-3, mixing_lr_multiplier=20)
    lrs = {g["name"]: g["lr"] for g in model.optimizer.param_groups}
    assert lrs == pytest.approx({"base": 1e-3, "residual_rule": 1e-2, "mixing": 2e-2})
    mixing = {id(p) for u in model.units if isinstance(u, UniMixing) for p in u.parameters()}
    group = next(g for g in model.optimizer.param_groups if g["name"] == "mixing")
    assert {id(p) for p in group["params"]} == mixing


@pytest.mark.parametrize("expid", ["UniMixer_demo", "UniMixerLite_demo"])
def test_mixing_moves_off_its_init_in_a_short_run(expid, demo_data_root, tmp_path):
    """Before: logits 4 I with tau -> 0.05 made W_G the identity (UniMixer) or left it at 1/n (Lite). Now one
    epoch on the demo data moves both matrices well off their init at the final temperature."""
    from fuxictr_deres.config import load_expid
    from fuxictr_deres.diagnostics import mixing_report
    from fuxictr_deres.runner import build_model as build, load_data
    params = load_expid(CONFIG, expid, data_root=demo_data_root)
    params.update(epochs=1, verbose=0, model_root=str(tmp_path), model_id=expid, gpu=-1)
    data = load_data(params)
    train_gen, valid_gen = data.loaders(params, "train")
    torch.manual_seed(0)
    model = build(params, data.feature_map)
    os.makedirs(model.model_dir, exist_ok=True)
    start = mixing_report(model)
    model.fit(train_gen, epochs=1, validation_data=valid_gen)
    end = mixing_report(model)
    for before, after in zip(start, end):
        assert before["global_from_init"] < 0.01 and before["local_from_init"] < 0.01     # only the init noise
        assert after["global_from_init"] > 0.1 and after["local_from_init"] > 0.02, after   # (measured 0.23-0.29)
        assert after["global_from_identity"] > 0.05 and after["global_from_uniform"] > 0.05, after


def test_default_init_follows_the_block_width():
    assert UniMixing(num_tokens=4, d_model=16).mixing_init == "tokenmixer"           # b = d / T
    assert UniMixing(num_tokens=4, d_model=16, block_size=8).mixing_init == "identity"
