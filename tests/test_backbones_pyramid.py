"""OneTrans' pyramid: layer l keeps its last T_l queries; rules that keep state are told through shrink."""

import pytest
import torch

from conftest import build_model, toy_batch
from fuxictr_deres.models import DeRes, OneTrans


@pytest.mark.parametrize("model_class,residual", [(OneTrans, "prenorm"), (OneTrans, "deres"), (DeRes, "deres"),
                                                  (OneTrans, "postnorm")])
def test_pyramid_shrinks_tokens_layer_by_layer(feature_map, model_class, residual):
    model = build_model(model_class, feature_map, num_layers=3, pyramid_tokens=[3, 3, 1], residual=residual)
    seen = []
    hooks = [unit.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[1], o.shape[1])))
             for unit in model.units]
    batch = toy_batch(8)
    out = model(batch)
    for h in hooks:
        h.remove()
    assert seen == [(4, 3), (3, 3), (3, 3), (3, 3), (3, 1), (1, 1)]
    assert model.backbone(batch).shape == (8, 1, model.d_model)
    loss = model.compute_loss(out, model.get_labels(batch))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert torch.isfinite(out["y_pred"]).all()


def test_pyramid_keeps_the_last_tokens(feature_map):
    """With prenorm, the pyramid's kept tokens equal the full model's tokens at layer 1 (same weights)."""
    full = build_model(OneTrans, feature_map, num_layers=1).eval()
    pyr = build_model(OneTrans, feature_map, num_layers=1, pyramid_tokens=[2]).eval()
    state = full.state_dict()
    for key in ("units.0.out.weight", "units.0.out.bias"):
        state[key] = state[key][-2:]
    for key in ("units.1.up.weight", "units.1.up.bias", "units.1.down.weight", "units.1.down.bias"):
        state[key] = state[key][-2:]
    pyr.load_state_dict(state)
    batch = toy_batch(4)
    torch.testing.assert_close(pyr.backbone(batch), full.backbone(batch)[:, -2:])


@pytest.mark.parametrize("sizes", [[3, 4], [2], [0, 0], [3, 2, 1]])
def test_bad_pyramid_is_an_error(feature_map, sizes):
    with pytest.raises(ValueError, match="pyramid_tokens"):
        build_model(OneTrans, feature_map, num_layers=2, pyramid_tokens=sizes)
