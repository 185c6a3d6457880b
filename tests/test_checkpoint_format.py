"""A checkpoint of another parameter layout is refused, not silently loaded into a different model."""

import logging

import pytest
import torch

from conftest import build_model, toy_batch
from fuxictr_deres.models import get_model_class
from fuxictr_deres.models.checkpoint_format import CHECKPOINT_FORMAT, FORMAT_KEY, CheckpointFormatError


def _model(feature_map, seed=7):
    return build_model(get_model_class("DeRes"), feature_map, seed=seed, residual="deres").eval()


def test_checkpoint_carries_the_layout_version_and_reloads_the_same_model(feature_map, tmp_path):
    model = _model(feature_map)
    path = str(tmp_path / "m.model")
    model.save_weights(path)
    assert int(torch.load(path)[FORMAT_KEY]) == CHECKPOINT_FORMAT
    other = _model(feature_map, seed=8)
    other.load_weights(path)
    batch = toy_batch()
    assert torch.equal(model(batch)["y_pred"], other(batch)["y_pred"])


def test_checkpoint_of_another_layout_is_refused_naming_the_file(feature_map, tmp_path):
    model = _model(feature_map)
    state = model.state_dict()
    state[FORMAT_KEY] = torch.tensor(CHECKPOINT_FORMAT - 1)
    path = str(tmp_path / "old.model")
    torch.save(state, path)
    with pytest.raises(CheckpointFormatError, match=r"old\.model: layout version 1"):
        _model(feature_map, seed=8).load_weights(path)


def test_unversioned_checkpoint_loads_with_a_warning(feature_map, tmp_path, caplog):
    model = _model(feature_map)
    state = {k: v for k, v in model.state_dict().items() if k != FORMAT_KEY}
    path = str(tmp_path / "legacy.model")
    torch.save(state, path)
    other = _model(feature_map, seed=8)
    with caplog.at_level(logging.WARNING):
        other.load_weights(path)
    assert "carries no layout version" in caplog.text and "legacy.model" in caplog.text
    batch = toy_batch()
    assert torch.equal(model(batch)["y_pred"], other(batch)["y_pred"])


def test_layout_version_survives_reset_parameters(feature_map):
    model = _model(feature_map)
    model.reset_parameters()
    assert int(getattr(model, FORMAT_KEY)) == CHECKPOINT_FORMAT
