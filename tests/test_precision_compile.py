"""``precision: bf16`` and ``compile: true`` on TokenCTR: bf16 gives the fp32 AUC on the demo data, the compiled unit
loop trains like the eager one, the loss is taken from logits under bf16, and clear errors for what they do not
support."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from conftest import CONFIG, build_model, toy_batch
from fuxictr_deres.models import DeRes, OneTrans, TokenMixerLarge
from fuxictr_deres.runner import run_expid

SMALL = {"epochs": 1, "verbose": 0, "d_model": 16, "num_layers": 1, "num_tokens": 4, "num_heads": 2}


def demo_auc(expid, data_root, model_root, **overrides):
    record = run_expid(CONFIG, expid, data_root=data_root, model_root=model_root,
                       overrides={**SMALL, **overrides}, write=False)
    assert math.isfinite(record["test"]["logloss"])
    return record["test"]["AUC"]


def test_bf16_matches_fp32_auc_on_demo(demo_data_root, tmp_path):
    expid = "DeRes_demo"
    fp32 = demo_auc(expid, demo_data_root, str(tmp_path / "fp32"))
    bf16 = demo_auc(expid, demo_data_root, str(tmp_path / "bf16"), precision="bf16")
    assert fp32 > 0.55 and abs(bf16 - fp32) < 0.02, (fp32, bf16)


def test_compiled_units_train_like_eager(feature_map):
    # aot_eager traces the unit loop through dynamo + AOTAutograd as inductor does, without inductor's C++ code
    # generation (418 s for a one-layer toy model on the loaded 2-core machine; demo-data epochs recompile per
    # batch shape, so this runs fixed-shape toy batches)
    models = [build_model(DeRes, feature_map, num_layers=1),
              build_model(DeRes, feature_map, num_layers=1, compile=True, compile_backend="aot_eager")]
    losses = []
    for model in models:
        model._max_gradient_norm = 10.0
        model.train()
        losses.append([float(model.train_step(toy_batch(64, seed=i)).detach()) for i in range(3)])
    assert losses[0][-1] < losses[0][0]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    batch = toy_batch(64, seed=9)
    with torch.no_grad():
        preds = [model(batch)["y_pred"].view(-1) for model in models]
    labels = batch["label"].numpy()
    aucs = [roc_auc_score(labels, p.numpy()) for p in preds]
    assert abs(aucs[1] - aucs[0]) < 1e-3, aucs


def test_bf16_loss_is_bce_on_float32_logits(feature_map):
    model = build_model(OneTrans, feature_map, precision="bf16")
    batch = toy_batch()
    out = model(batch)
    assert out["logit"].dtype == torch.float32 and out["y_pred"].dtype == torch.float32
    y = model.get_labels(batch)
    expected = F.binary_cross_entropy_with_logits(out["logit"], y)
    assert torch.equal(model.add_loss(out, y), expected)
    model._max_gradient_norm = 10.0
    assert math.isfinite(float(model.train_step(batch).detach()))


def test_fp32_default_is_unchanged_by_the_options(feature_map):
    plain = build_model(DeRes, feature_map)
    explicit = build_model(DeRes, feature_map, precision="fp32", compile=False)
    batch = toy_batch()
    assert torch.equal(plain(batch)["y_pred"], explicit(batch)["y_pred"])


@pytest.mark.parametrize("kwargs,match", [({"precision": "fp16"}, "precision='fp16'"),
                                          ({"precision": "bf16", "loss": "mse"}, "binary_crossentropy"),
                                          ({"compile": "yes"}, "compile='yes'")])
def test_bad_speed_options_are_refused(feature_map, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(OneTrans, feature_map, **kwargs)


def test_bf16_refused_where_forward_is_overridden(feature_map):
    with pytest.raises(ValueError, match="TokenMixerLarge overrides"):
        build_model(TokenMixerLarge, feature_map, precision="bf16", tokenizer="groups", num_tokens=4)
