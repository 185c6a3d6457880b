"""WuKong (arXiv 2403.02545): the optimised FM equals the full FM product, widths and residual projections,
the FLOP count against torch's matmul count."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import build_model, toy_batch
from fuxictr_deres.layers.fm_block import WuKongLayer
from fuxictr_deres.models import WuKong


def test_layer_matches_its_equation():
    layer = WuKongLayer(num_tokens=5, d_model=4, fmb_tokens=3, lcb_tokens=2, fm_rank=2, mlp_hidden_units=[6])
    assert layer.res_proj is None                                   # 3 + 2 == 5: identity residual
    x = torch.randn(7, 5, 4)
    fm = (x @ x.transpose(1, 2) @ layer.fm_y).flatten(1)          # (X X^T) Y, the unoptimised order
    fmb = layer.fm_mlp(layer.fm_norm(fm)).view(7, 3, 4)
    lcb = torch.einsum("ln,bnd->bld", layer.lcb.weight, x)
    expected = torch.nn.functional.layer_norm(torch.cat([fmb, lcb], 1) + x, (4,), layer.norm.weight, layer.norm.bias)
    torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-5)


def test_widths_and_projection_when_token_counts_differ(feature_map):
    model = build_model(WuKong, feature_map, num_layers=3, fmb_tokens=3, lcb_tokens=2)
    assert model.unit_token_counts() == [8, 5, 5]
    assert model.units[0].res_proj is not None and model.units[1].res_proj is None
    assert model(toy_batch(4))["y_pred"].shape == (4, 1)


def test_analytic_flops_cover_torch_matmul_count():
    layer = WuKongLayer(num_tokens=8, d_model=16, fmb_tokens=4, lcb_tokens=6, fm_rank=4, mlp_hidden_units=[32])
    x = torch.randn(1, 8, 16)
    with FlopCounterMode(display=False) as counter:
        layer(x)
    measured = counter.get_total_flops()
    analytic = layer.flops(8)
    assert measured <= analytic <= 1.5 * measured


def test_token_width_is_projected_to_d_model(feature_map):
    model = build_model(WuKong, feature_map, num_layers=2, d_model=24)          # embedding_dim 8 in the toy model
    assert model.tokenizer.d_in == 8 and model.tokenizer.d_out == 24
    assert all(unit.d_model == 24 for unit in model.units)
    assert model(toy_batch(4))["y_pred"].shape == (4, 1)
    assert isinstance(build_model(WuKong, feature_map, d_model=None).tokenizer, torch.nn.Identity)


def test_expids_run_at_the_token_models_width():
    from conftest import expid_model
    for dataset in ("frappe", "movielenslatest", "criteo"):
        model = expid_model(f"WuKong_{dataset}")
        assert model.d_model == 64 and model.units[0].d_model == 64, dataset   # not the embedding width 10
