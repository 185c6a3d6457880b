"""The residual-rule baselines of specs/residual_rules.md: each at its identity/init setting against the Pre-Norm
model, their special initialisations against FuxiCTR's reset_parameters(), a shrinking token count, and depth."""

import pytest
import torch
from torch import nn

from conftest import build_model, toy_batch
from fuxictr_deres.models import OneTrans, TokenCTR
from fuxictr_deres.residuals import build_residual_rule
from fuxictr_deres.residuals.block_attention import BlockAttentionRead


def twin(feature_map, residual, residual_params=None, **kw):
    """A TokenCTR model with ``residual`` and a OneTrans (Pre-Norm) model sharing every backbone weight."""
    ref = build_model(OneTrans, feature_map, **kw)
    model = build_model(TokenCTR, feature_map, residual=residual, residual_params=residual_params or {}, **kw)
    missing, unexpected = model.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("rule.") for k in missing)
    return model.eval(), ref.eval()


# ---------------------------------------------------------------- Post-Norm

def test_postnorm_is_norm_of_the_sum(feature_map):
    model, _ = twin(feature_map, "postnorm", num_layers=2)
    x0 = torch.randn(2, model.num_tokens, model.d_model)
    units = list(model.units)
    x = x0
    for u, unit in enumerate(units):
        x = nn.functional.layer_norm(x + unit(x), (model.d_model,), eps=1e-5)
    torch.testing.assert_close(model.rule.run(x0, units), x)


def test_postnorm_rmsnorm_option_and_bad_norm():
    rule = build_residual_rule("postnorm", {"norm": "rmsnorm"}, 4, 8, 3)
    assert isinstance(rule.norms[0], nn.RMSNorm)
    with pytest.raises(ValueError, match="norm"):
        build_residual_rule("postnorm", {"norm": "batchnorm"}, 4, 8, 3)


# ---------------------------------------------------------------- scaled residuals (learnable, ReZero, LayerScale)

def test_learnable_residual_at_init_is_exactly_prenorm(feature_map):
    model, ref = twin(feature_map, "learnable", num_layers=3)
    batch = toy_batch()
    assert torch.equal(model(batch)["y_pred"], ref(batch)["y_pred"])


@pytest.mark.parametrize("residual", ["rezero", "layerscale"])
def test_branch_scales_at_one_are_exactly_prenorm(feature_map, residual):
    model, ref = twin(feature_map, residual, {"init": 1.0}, num_layers=3)
    batch = toy_batch()
    assert torch.equal(model(batch)["y_pred"], ref(batch)["y_pred"])


def test_scaled_residual_inits_and_shapes():
    learnable = build_residual_rule("learnable", {}, 4, 8, 3)
    rezero = build_residual_rule("rezero", {}, 4, 8, 3)
    layerscale = build_residual_rule("layerscale", {"init": 1.e-3}, 4, 8, 3)
    assert learnable.scale.shape == (4, 8) and torch.all(learnable.scale == 1)
    assert rezero.scale.shape == (4, 1) and torch.all(rezero.scale == 0)
    assert layerscale.scale.shape == (4, 8) and torch.allclose(layerscale.scale, torch.full((4, 8), 1e-3))
    assert build_residual_rule("layerscale", {}, 4, 8, 3).scale[0, 0].item() == pytest.approx(1e-4)
    x0 = torch.randn(2, 3, 8)
    units = [nn.Linear(8, 8) for _ in range(4)]
    assert torch.equal(rezero.run(x0, units), x0)                       # ReZero starts as the identity map


# ---------------------------------------------------------------- DenseFormer

@pytest.mark.parametrize("params", [{}, {"per_unit": True}])
def test_denseformer_at_init_is_prenorm(feature_map, params):
    model, ref = twin(feature_map, "denseformer", params, num_layers=3)
    batch = toy_batch()
    torch.testing.assert_close(model(batch)["y_pred"], ref(batch)["y_pred"], rtol=0, atol=0)
    rule = model.rule
    blocks = 6 if params else 3
    assert rule.num_blocks == blocks
    assert sum(rule.dwa_weights(i).numel() for i in range(1, blocks + 1)) == blocks * (blocks + 3) // 2


def test_denseformer_is_the_depth_weighted_average():
    torch.manual_seed(0)
    rule = build_residual_rule("denseformer", {}, 5, 8, 3, units_per_layer=2)    # blocks of 2, 2, 1 units
    with torch.no_grad():
        rule.dwa.normal_()
    units = [nn.Linear(8, 8) for _ in range(5)]
    x0 = torch.randn(2, 3, 8)
    outputs, y = [x0], x0
    for block in ([0, 1], [2, 3], [4]):
        x = y
        for u in block:
            x = x + units[u](x)
        outputs.append(x)
        a = rule.dwa[len(outputs) - 2, :len(outputs)]
        y = sum(a_j * x_j for a_j, x_j in zip(a, outputs))
    rule.trace = []
    torch.testing.assert_close(rule.run(x0, units), y)
    assert [e["num_sources"] for e in rule.trace] == [2, 3, 4]


# ---------------------------------------------------------------- AttnRes (Full and Block)

@pytest.mark.parametrize("residual", ["attnres_full", "attnres_block"])
def test_attnres_zero_queries_average_uniformly(feature_map, residual):
    model, _ = twin(feature_map, residual, num_layers=3)
    rule = model.rule
    reads = [m for m in rule.modules() if isinstance(m, BlockAttentionRead)]
    assert rule.path_mode == "attn" and reads and all(read.score_fn == "softmax" for read in reads)
    assert rule.tau == 1.0 and rule.beta == 0.0
    rule.trace = []
    model(toy_batch())
    assert len(rule.trace) == 7
    for entry in rule.trace:
        m = entry["num_sources"]
        torch.testing.assert_close(entry["alpha_mean"], torch.full((m,), 1.0 / m))
        assert float(entry["alpha_std"].max()) < 1e-6
    # the read is the plain average of the sources: for the first unit, that is X0 itself
    x0 = torch.randn(2, model.num_tokens, model.d_model)
    state = rule.init(x0)
    torch.testing.assert_close(rule.unit_input(state, 0), x0)


def test_attnres_full_sees_every_unit_and_block_clamps():
    full = build_residual_rule("attnres_full", {}, 6, 8, 3)
    assert full.block_units == 1 and full.sources_per_read() == list(range(1, 8))
    block = build_residual_rule("attnres_block", {"num_blocks": 8}, 6, 8, 3)   # 8 blocks > 6 units: Full AttnRes
    assert block.block_units == 1
    assert build_residual_rule("attnres_block", {}, 8, 8, 3).block_units == 2    # default: min(8, L) = 4 blocks
    assert build_residual_rule("attnres_block", {}, 32, 8, 3).block_units == 4   # 8 blocks of 2 layers
    assert build_residual_rule("attnres_block", {"block_size": 3}, 12, 8, 3).block_units == 6
    block = build_residual_rule("attnres_block", {"num_blocks": 2}, 8, 8, 3)
    assert block.block_units == 4 and block.sources_per_read() == [1, 2, 2, 2, 2, 3, 3, 3, 3]


def test_attnres_block_with_one_block_per_unit_equals_full_exactly(feature_map):
    num_layers = 3
    full = build_model(TokenCTR, feature_map, num_layers=num_layers, residual="attnres_full").eval()
    block = build_model(TokenCTR, feature_map, num_layers=num_layers, residual="attnres_block",
                        residual_params={"num_blocks": 2 * num_layers}).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in full.rule.named_parameters():
            if name.endswith("query"):
                p.normal_()
            elif name.endswith("key_gain"):
                p.uniform_(0.5, 1.5)
    assert any(name.endswith("query") and torch.count_nonzero(p) for name, p in full.rule.named_parameters())
    block.load_state_dict(full.state_dict())
    batch = toy_batch()
    assert torch.equal(full(batch)["y_pred"], block(batch)["y_pred"])


# ---------------------------------------------------------------- Hyper-Connections and mHC

UNIT_SCALE = "partial(nn.init.normal_, std=1.0)"   # the final norm's eps / mean(x^2) stays far below tolerance


@pytest.mark.parametrize("residual,params", [("hc", {}), ("hc", {"dynamic": True}), ("hc", {"num_streams": 2}),
                                             ("mhc", {}), ("mhc", {"dynamic": False}), ("mhc", {"num_streams": 3})])
def test_stream_rules_at_init_equal_prenorm(feature_map, residual, params):
    model, ref = twin(feature_map, residual, params, num_layers=3, embedding_initializer=UNIT_SCALE)
    batch = toy_batch()
    torch.testing.assert_close(model(batch)["y_pred"], ref(batch)["y_pred"], rtol=1e-5, atol=1e-6)
    # every stream carries the Pre-Norm state: the (unnormalised) output is n times the Pre-Norm state
    x0 = torch.randn(2, model.num_tokens, model.d_model)
    n = model.rule.num_streams
    torch.testing.assert_close(model.rule.run(x0, list(model.units)), n * ref.rule.run(x0, list(ref.units)),
                               rtol=1e-5, atol=1e-4)


def test_hc_initial_maps_and_trace():
    rule = build_residual_rule("hc", {"dynamic": True}, 6, 8, 3)
    rule.trace = []
    rule.run(torch.randn(2, 3, 8), [nn.Linear(8, 8) for _ in range(6)])
    assert len(rule.trace) == 6
    for u, entry in enumerate(rule.trace):
        torch.testing.assert_close(entry["A_m"], torch.eye(4)[u % 4])
        torch.testing.assert_close(entry["A_r"], torch.eye(4))
        torch.testing.assert_close(entry["B"], torch.ones(4))
    assert torch.all(rule.alpha_scale == 0.01) and torch.all(rule.beta_scale == 0.01)
    assert torch.count_nonzero(rule.dynamic_alpha) == 0 and torch.count_nonzero(rule.dynamic_beta) == 0


def test_hc_dynamic_weights_learn_from_the_first_step():
    torch.manual_seed(0)
    rule = build_residual_rule("hc", {"dynamic": True}, 4, 8, 3)
    out = rule.run(torch.randn(2, 3, 8), [nn.Linear(8, 8) for _ in range(4)])
    out.square().sum().backward()
    assert rule.dynamic_alpha.grad.abs().sum() > 0 and rule.dynamic_beta.grad.abs().sum() > 0


def test_mhc_initial_maps_and_trace():
    rule = build_residual_rule("mhc", {}, 4, 8, 3)
    assert rule.phi.shape == (4, 4 * 8, 4 * 4 + 2 * 4) and torch.count_nonzero(rule.phi) == 0
    assert torch.all(rule.scales == 0.01)
    assert torch.all(rule.b_res.diagonal(dim1=-2, dim2=-1) == 0)
    assert torch.all(rule.b_res[:, 0, 1:] == -8) and torch.all(rule.b_post == 0)
    rule.trace = []
    rule.run(torch.randn(2, 3, 8), [nn.Linear(8, 8) for _ in range(4)])
    for entry in rule.trace:
        torch.testing.assert_close(entry["H_pre"], torch.full((4,), 0.25))
        torch.testing.assert_close(entry["H_post"], torch.ones(4))
        assert torch.all(entry["H_res"].diagonal() > 0.998)
    with pytest.raises(ValueError, match="at least 2 streams"):
        build_residual_rule("mhc", {"num_streams": 1}, 4, 8, 3)


def test_mhc_maps_respect_their_manifolds_off_init():
    torch.manual_seed(0)
    rule = build_residual_rule("mhc", {}, 4, 8, 3)
    with torch.no_grad():
        rule.phi.normal_()
        rule.scales.uniform_(0.005, 0.02)
        rule.b_pre.normal_()
        rule.b_post.normal_()
        rule.b_res.add_(0.1 * torch.randn_like(rule.b_res))
    pre, res, post = rule.maps(torch.randn(5, 3, 4, 8) * 10, 1)
    assert torch.all(pre >= 0) and torch.all(pre <= 1)
    assert torch.all(post >= 0) and torch.all(post <= 2)
    assert torch.all(res >= 0)
    # the last Sinkhorn step normalises columns: the sum over streams is preserved exactly
    torch.testing.assert_close(res.sum(-2), torch.ones(5, 3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.sum(-1), torch.ones(5, 3, 4), atol=1e-3, rtol=0)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_sinkhorn_is_doubly_stochastic_at_20_iterations(n):
    from fuxictr_deres.layers.sinkhorn import sinkhorn
    torch.manual_seed(n)
    logits = torch.randn(256, n, n) * 0.5
    logits[0] = 0.0                                                    # uniform
    logits[1] = torch.full((n, n), -8.0).fill_diagonal_(0.0)           # mHC's H_res at init
    m = sinkhorn(logits, iters=20)
    assert torch.all(m >= 0)
    assert (m.sum(-1) - 1).abs().max() < 1e-3 and (m.sum(-2) - 1).abs().max() < 1e-3
    torch.testing.assert_close(m[0], torch.full((n, n), 1.0 / n))
    # one iteration is not enough for general logits: the iterations matter
    assert (sinkhorn(torch.randn(256, n, n) * 2, iters=1).sum(-1) - 1).abs().max() > 1e-3
    with pytest.raises(ValueError, match="square"):
        sinkhorn(torch.zeros(3, 4))


def test_sinkhorn_large_logits_do_not_overflow():
    from fuxictr_deres.layers.sinkhorn import sinkhorn
    torch.manual_seed(0)
    m = sinkhorn(torch.randn(64, 4, 4) * 1000, iters=20)
    assert torch.isfinite(m).all()
    torch.testing.assert_close(m.sum(-2), torch.ones(64, 4), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- every rule: init, shrinking T, depth

#: every rule of this file with options that exercise its non-default paths
RULE_CASES = [
    ("postnorm", {}), ("postnorm", {"norm": "rmsnorm"}),
    ("learnable", {}), ("rezero", {}), ("layerscale", {}),
    ("denseformer", {}), ("denseformer", {"per_unit": True}),
    ("attnres_full", {}), ("attnres_block", {"num_blocks": 2}), ("attnres_block", {"per_token_query": True}),
    ("hc", {}), ("hc", {"dynamic": True}), ("mhc", {}), ("mhc", {"dynamic": False}),
]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in params.items()) or 'default'}" for name, params in RULE_CASES]


@pytest.mark.parametrize("residual,params", RULE_CASES, ids=CASE_IDS)
def test_special_initialisations_survive_reset_parameters(feature_map, residual, params):
    model = build_model(TokenCTR, feature_map, residual=residual, residual_params=params)
    initial = {k: v.clone() for k, v in model.rule.state_dict().items()}
    with torch.no_grad():
        for p in model.rule.parameters():
            p.normal_()
    model.reset_parameters()
    for key, value in model.rule.state_dict().items():
        assert torch.equal(value, initial[key]), key


class DropFirstToken(nn.Module):
    """A pyramid-style unit: a token-wise map that returns only its input's last T - 1 tokens."""

    def __init__(self, d):
        super().__init__()
        self.norm, self.linear = nn.RMSNorm(d), nn.Linear(d, d)

    def forward(self, h):
        return self.linear(self.norm(h))[:, 1:]


class KeepTokens(DropFirstToken):
    def forward(self, h):
        return self.linear(self.norm(h))


@pytest.mark.parametrize("residual,params", RULE_CASES, ids=CASE_IDS)
def test_rule_runs_on_a_shrinking_token_count(residual, params):
    torch.manual_seed(0)
    num_tokens, d = 6, 8
    units = [KeepTokens(d), DropFirstToken(d), KeepTokens(d), DropFirstToken(d), DropFirstToken(d)]
    rule = build_residual_rule(residual, params, len(units), d, num_tokens)
    with torch.no_grad():                                   # move off the init so every parameter matters
        for p in rule.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x0 = torch.randn(3, num_tokens, d, requires_grad=True)
    out = rule.run(x0, units)
    assert out.shape == (3, num_tokens - 3, d)
    out.square().sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x0.grad).all()
    # the pyramid keeps the LAST tokens: the first three tokens of X0 cannot influence the output
    assert torch.count_nonzero(x0.grad[:, :3]) == 0
    for name, p in rule.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.fixture(scope="module")
def deep_units(tmp_path_factory):
    from conftest import toy_feature_map
    model = build_model(OneTrans, toy_feature_map(str(tmp_path_factory.mktemp("fm"))), num_layers=8)
    return model


#: one case per rule (the depth test is the slow one)
DEPTH_CASES = [case for i, case in enumerate(RULE_CASES) if case[0] not in [c[0] for c in RULE_CASES[:i]]]


@pytest.mark.parametrize("residual,params", DEPTH_CASES, ids=[c[0] for c in DEPTH_CASES])
def test_rule_has_finite_gradients_at_depth_1_to_8(deep_units, residual, params):
    model = deep_units
    for num_layers in range(1, 9):
        units = list(model.units)[:2 * num_layers]
        rule = build_residual_rule(residual, params, len(units), model.d_model, model.num_tokens)
        model.zero_grad()
        x0 = torch.randn(2, model.num_tokens, model.d_model)
        out = model.final_norm(rule.run(x0, units))
        assert out.shape == x0.shape and torch.isfinite(out).all(), num_layers
        out.sum().backward()
        for name, p in list(rule.named_parameters()) + list(model.units.named_parameters()):
            assert p.grad is None or torch.isfinite(p.grad).all(), (num_layers, name)


@pytest.mark.parametrize("residual,params", RULE_CASES, ids=CASE_IDS)
def test_rule_counts_its_flops(residual, params):
    rule = build_residual_rule(residual, params, 8, 64, 16)
    prenorm = build_residual_rule("prenorm", {}, 8, 64, 16)
    assert isinstance(rule.flops(16), int) and rule.flops(16) >= prenorm.flops(16) > 0
    assert rule.flops(8) < rule.flops(16)


# ---------------------------------------------------------------- the benchmark expids

def test_residual_rule_expids_cover_every_rule_and_dataset():
    import pathlib
    import yaml
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmark_configs" / "model_config" / "residual_rules.yaml"
    expids = yaml.safe_load(path.read_text())
    deres = yaml.safe_load((path.parent / "deres.yaml").read_text())
    names = ["PostNorm", "LearnableRes", "ReZero", "LayerScale", "DenseFormer", "HC", "mHC", "AttnResFull",
             "AttnResBlock"]
    datasets = ["demo", "criteo", "criteo_x4", "avazu", "avazu_x1", "frappe", "movielenslatest"]
    assert set(expids) == {f"{n}_{d}" for n in names for d in datasets}
    for expid, cfg in expids.items():
        assert cfg["model"] == "OneTrans" and expid.endswith("_" + cfg["dataset_id"]), expid
        reference = deres[f"DeRes_{cfg['dataset_id']}"]                # fairness: only the rule differs
        for key in ("num_tokens", "d_model", "num_layers", "num_heads", "ffn_ratio"):
            assert cfg.get(key) == reference.get(key), f"{expid}: {key} differs from DeRes_{cfg['dataset_id']}"
        build_residual_rule(cfg["residual"], cfg.get("residual_params"), 8, 64, 16)   # the options are valid
    assert expids["LayerScale_criteo"]["residual_params"]["init"] == pytest.approx(1e-4)


# ---------------------------------------------------------------- learning-rate multiplier of the rule's parameters

def group_lrs(model):
    return {g["name"]: g["lr"] for g in model.optimizer.param_groups}


def test_rule_parameters_get_their_own_learning_rate_and_survive_compile(feature_map):
    model = build_model(TokenCTR, feature_map, residual="deres", learning_rate=2e-3, residual_lr_multiplier=5)
    for _ in range(2):                                             # __init__'s compile, then FuxiCTR's again
        groups = model.optimizer.param_groups
        assert [g["name"] for g in groups] == ["base", "residual_rule"]
        assert group_lrs(model) == pytest.approx({"base": 2e-3, "residual_rule": 1e-2})
        rule_ids = {id(p) for p in model.rule.parameters()}
        assert {id(p) for p in groups[1]["params"]} == rule_ids
        assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.parameters()} - rule_ids
        model.compile("adam", "binary_crossentropy", 2e-3)


def test_reduce_on_plateau_scales_both_groups(feature_map):
    from fuxictr.utils import Monitor
    model = build_model(TokenCTR, feature_map, residual="deres", learning_rate=1e-3, reduce_lr_on_plateau=True)
    assert group_lrs(model) == pytest.approx({"base": 1e-3, "residual_rule": 1e-2})   # the default multiplier 10
    model._monitor, model._best_metric, model._stopping_steps = Monitor("AUC"), 0.9, 0
    model.checkpoint_and_earlystop({"AUC": 0.8})                    # no improvement: FuxiCTR calls lr_decay()
    assert group_lrs(model) == pytest.approx({"base": 1e-4, "residual_rule": 1e-3})
    assert model.lr_decay() == pytest.approx(1e-5)                  # reports the base group's rate
    assert model.lr_decay() == pytest.approx(1e-6)
    assert group_lrs(model) == pytest.approx({"base": 1e-6, "residual_rule": 1e-5})
    model.lr_decay()                                                # each group floored at FuxiCTR's min_lr
    assert group_lrs(model) == pytest.approx({"base": 1e-6, "residual_rule": 1e-6})


def test_rules_without_parameters_have_one_group_and_bad_multiplier_fails(feature_map):
    model = build_model(OneTrans, feature_map)
    assert [g["name"] for g in model.optimizer.param_groups] == ["base"]
    with pytest.raises(ValueError, match="residual_lr_multiplier"):
        build_model(TokenCTR, feature_map, residual="deres", residual_lr_multiplier=0)


def test_multiplier_speeds_up_only_the_rule(feature_map):
    """One Adam step: the rule's parameters move m times as far as at m = 1, the others the same."""
    moved = {}
    for m in (1, 10):
        model = build_model(TokenCTR, feature_map, residual="deres", residual_lr_multiplier=m).train()
        model._max_gradient_norm = 10.0                             # set by fit() in FuxiCTR
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.train_step(toy_batch())
        moved[m] = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    for name, delta in moved[10].items():
        expected = 10 * moved[1][name] if name.startswith("rule.") else moved[1][name]
        assert delta == pytest.approx(expected, rel=1e-3, abs=1e-9), name


# ---------------------------------------------------------------- every rule's init invariant with normalised tokens

from conftest import expid_twin  # noqa: E402
from fuxictr_deres.bench.synthetic import synthetic_batch  # noqa: E402

NORMALISED = {"tokenizer_params": {"input_norm": True}}


@pytest.mark.parametrize("expid,rule_overrides", [
    ("LearnableRes_frappe", None), ("ReZero_frappe", {"residual_params": {"init": 1.0}}),
    ("LayerScale_frappe", {"residual_params": {"init": 1.0}}), ("DenseFormer_frappe", None), ("HC_frappe", None),
    ("mHC_frappe", None), ("DeRes_frappe", None), ("DeRes_IdentityOnly_frappe", None),
    ("DeRes_AttnOnly_frappe", None)])
def test_rules_start_as_prenorm_with_normalised_tokens(expid, rule_overrides):
    model, ref = expid_twin(expid, "OneTrans_frappe", NORMALISED, rule_overrides)
    batch = synthetic_batch(model.feature_map, 128)
    with torch.no_grad():
        tol = 2e-3 if expid == "DeRes_AttnOnly_frappe" else 1e-5       # SiLU(1.2785) = 1 to 4 digits
        torch.testing.assert_close(model(batch)["logit"], ref(batch)["logit"], rtol=tol, atol=tol)


@pytest.mark.parametrize("expid", ["AttnResFull_frappe", "AttnResBlock_frappe"])
def test_attnres_weights_are_uniform_with_normalised_tokens(expid):
    model, _ = expid_twin(expid, "OneTrans_frappe", NORMALISED)
    model.rule.trace = []
    with torch.no_grad():
        model(synthetic_batch(model.feature_map, 64))
    for entry in model.rule.trace:
        m = entry["num_sources"]
        torch.testing.assert_close(entry["alpha_mean"], torch.full((m,), 1.0 / m))
