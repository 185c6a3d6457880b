"""FLOP accounting: the analytic count and FlopCounterMode agree for every registered model and rule, DeRes'
overhead over OneTrans is small, and the command prints both counts and the overhead grid."""

import pytest
import torch

from conftest import CONFIG, build_model, toy_batch
from fuxictr_deres import models
from fuxictr_deres.cli import main
from fuxictr_deres.flops import analytic_parts, counter_mode, flop_report, prenorm_twin
from fuxictr_deres.residuals import RESIDUAL_RULES

# The counter sees matmul-family ops only; the analytic count adds the elementwise share (norms, activations,
# biases, gates), which at these sizes stays under 15% of the total.
ELEMENTWISE_SHARE = 0.15
SIZES = dict(num_tokens=8, d_model=32, num_layers=2, num_heads=2)
# constructor options that fit the toy map (8 fields x embedding_dim 8) for models whose defaults do not
MODEL_OPTIONS = {
    "DCNv2": {"parallel_dnn_hidden_units": [32, 32]},
    "FinalMLP": {"mlp1_hidden_units": [32, 32], "mlp2_hidden_units": [32], "fs_hidden_units": [16]},
    "WuKong": {"fmb_tokens": 4, "lcb_tokens": 4, "fm_rank": 4, "fmb_hidden_units": [32]},
}


def check_counts(report):
    assert report.analytic_total > 0
    ratio = report.counted_total / report.analytic_total
    assert 1 - ELEMENTWISE_SHARE <= ratio <= 1.0 + 1e-9, (report.model, ratio, report.as_dict())
    if report.has_backbone:
        assert report.counted_backbone <= report.analytic_backbone * (1 + 1e-9)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_counts_agree_for_every_model(feature_map, name):
    model = build_model(models.get_model_class(name), feature_map, **SIZES, **MODEL_OPTIONS.get(name, {}))
    check_counts(flop_report(model, toy_batch(32)))


@pytest.mark.parametrize("rule", sorted(RESIDUAL_RULES))
def test_counts_agree_for_every_rule(feature_map, rule):
    model = build_model(models.OneTrans, feature_map, residual=rule, **dict(SIZES, d_model=64))
    check_counts(flop_report(model, toy_batch(32)))


def test_sdpa_is_counted_on_cpu():
    q = torch.randn(2, 4, 8, 16)
    with counter_mode() as mode:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert mode.get_total_flops() == 2 * (2 * 2 * 4 * 8 * 8 * 16)


def test_deres_overhead_under_five_percent(feature_map):
    sizes = dict(num_tokens=16, d_model=64, num_layers=8, num_heads=4, ffn_ratio=4)
    deres = build_model(models.DeRes, feature_map, **sizes)
    onetrans = build_model(models.OneTrans, feature_map, **sizes)
    batch = toy_batch(2)
    total = lambda model: sum(analytic_parts(model, batch)[0].values())
    overhead = (total(deres) - total(onetrans)) / total(onetrans)
    assert 0 < overhead < 0.05
    assert prenorm_twin({"residual": "deres", "residual_params": {}}) == {"residual": "prenorm"}


def test_command_prints_counts_and_grid(capsys):
    assert main(["flops", "--config", CONFIG, "--expid", "DeRes_demo", "--synthetic",
                 "--set", "num_layers=2"]) == 0
    out = capsys.readouterr().out
    assert "FlopCounterMode" in out and "backbone (units + rule)" in out and "Pre-Norm twin" in out
    assert main(["flops", "--config", CONFIG, "--expid", "DeRes_demo", "--synthetic",
                 "--overhead-grid", "--widths", "32", "--depths", "1,2"]) == 0
    out = capsys.readouterr().out
    assert out.count("%") >= 4 and "overhead" in out
