"""FuxiCTR's own DCNv2 and FinalMLP, imported from the wheel, registered, and trained on a plain batch."""

import pytest
import torch
from model_zoo.LongCTR import DCNv2 as WheelDCNv2
from model_zoo.LongCTR import FinalMLP as WheelFinalMLP

from conftest import build_model, toy_batch
from fuxictr_deres.models import get_model_class


def test_registered_names_are_the_wheels_classes():
    assert issubclass(get_model_class("DCNv2"), WheelDCNv2)
    assert issubclass(get_model_class("FinalMLP"), WheelFinalMLP)


@pytest.mark.parametrize("structure", ["crossnet_only", "stacked", "parallel", "stacked_parallel"])
def test_dcnv2_structures_train_on_a_plain_batch(feature_map, structure):
    model = build_model(get_model_class("DCNv2"), feature_map, model_structure=structure,
                        stacked_dnn_hidden_units=[16], parallel_dnn_hidden_units=[8], num_cross_layers=2)
    batch = toy_batch(16)
    model._max_gradient_norm, model._batch_index = 10.0, 0
    before = model.crossnet.cross_layers[0].weight.detach().clone()
    loss = model.train_step(batch)
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.crossnet.cross_layers[0].weight)
    assert model(batch)["y_pred"].shape == (16, 1)


def test_finalmlp_applies_its_feature_selection_gates(feature_map):
    model = build_model(get_model_class("FinalMLP"), feature_map, mlp1_hidden_units=[16], mlp2_hidden_units=[16],
                        fs_hidden_units=[8]).eval()
    batch = toy_batch(8)
    before = model(batch)["y_pred"]
    with torch.no_grad():
        model.fs_module.fs1_ctx_bias.add_(1.0)
    assert not torch.allclose(model(batch)["y_pred"], before)
    no_fs = build_model(get_model_class("FinalMLP"), feature_map, use_fs=False, mlp1_hidden_units=[16],
                        mlp2_hidden_units=[16])
    assert no_fs(batch)["y_pred"].shape == (8, 1)
