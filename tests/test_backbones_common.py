"""Every backbone baseline on the toy FeatureMap: output shape, finite gradients everywhere, one train step,
a positive analytic FLOP count per unit."""


import pytest
import torch

from conftest import build_model, toy_batch
from fuxictr_deres import models

# (registered model name, constructor overrides that fit the toy map: 8 fields x embedding_dim 8 = 64 values)
CASES = [
    ("RankMixer", {}),
    ("RankMixer", {"granularity": "sublayer"}),
    ("RankMixer", {"residual": "deres"}),
    ("TokenMixerLarge", {}),
    ("TokenMixerLarge", {"mix_heads": 8, "inter_residual_every": 3, "num_layers": 4}),
    ("TokenMixerLarge", {"residual": "deres", "aux_loss_weight": 0.0}),
    ("DCNv2", {"parallel_dnn_hidden_units": [16, 16]}),
    ("FinalMLP", {"mlp1_hidden_units": [16, 16], "mlp2_hidden_units": [16], "fs_hidden_units": [8]}),
    ("WuKong", {"fmb_tokens": 4, "lcb_tokens": 4, "fm_rank": 3, "fmb_hidden_units": [16]}),
    ("WuKong", {"fmb_tokens": 3, "lcb_tokens": 2, "num_layers": 3}),
    ("HiFormer", {}),
    ("HiFormer", {"composite_rank": 4, "task_token": True}),
    ("HiFormer", {"task_token": True, "residual": "deres"}),
    ("UniMixer", {}),
    ("UniMixer", {"residual": "deres", "block_size": 8}),
    ("UniMixerLite", {}),
]


def case_id(case):
    name, overrides = case
    return name + "".join(f"-{k}={v}" for k, v in overrides.items())


def forward_backward(model, batch):
    model.train()
    out = model(batch)
    loss = model.compute_loss(out, model.get_labels(batch))
    model.zero_grad()
    loss.backward()
    return out, loss


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_shapes_finite_gradients_and_flops(feature_map, case):
    name, overrides = case
    model = build_model(models.get_model_class(name), feature_map, **overrides)
    batch = toy_batch(16)
    out, loss = forward_backward(model, batch)
    assert out["y_pred"].shape == (16, 1)
    assert torch.isfinite(loss)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trained
    for n, p in trained:
        assert p.grad is not None, f"{n} gets no gradient"
        assert torch.isfinite(p.grad).all(), f"{n} has a non-finite gradient"
    if hasattr(model, "units"):
        tokens = model.unit_token_counts() if hasattr(model, "unit_token_counts") else \
            [model.num_tokens] * len(model.units)
        counts = [unit.flops(t) for unit, t in zip(model.units, tokens)]
        assert all(isinstance(c, int) and c >= 0 for c in counts) and sum(counts) > 0
    if hasattr(model, "rule"):
        assert model.rule.flops(model.num_tokens) >= 0
    before = {n: p.detach().clone() for n, p in trained}
    model._max_gradient_norm = 10.0
    model._batch_index = 0
    model.train_step(batch)
    assert any(not torch.equal(before[n], p) for n, p in trained), "one train step changed nothing"
