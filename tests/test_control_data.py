"""The DeRes positive control (issue 14): its generator, its planted structure, its expids, one tiny run."""

import os

import numpy as np
import pytest

from conftest import CONFIG, TINY
from fuxictr_deres.config import load_expid
from fuxictr_deres.data.control import (FIRST_ORDER, INTEREST, PARITY, ControlRowModel, iter_control_chunks,
                                        true_logits, write_criteo_control)
from fuxictr_deres.data.demo import CRITEO_COLUMNS, SPARSE_COLS, generate_criteo_frame, write_criteo_demo

CONTROL_EXPIDS = ("DeRes_control", "OneTrans_control", "AttnResBlock_control")


def test_same_seed_is_byte_identical_and_differs_from_the_demo(tmp_path):
    a = open(write_criteo_control(str(tmp_path / "a.txt"), 1500, 4), "rb").read()
    b = open(write_criteo_control(str(tmp_path / "b.txt"), 1500, 4), "rb").read()
    c = open(write_criteo_control(str(tmp_path / "c.txt"), 1500, 5), "rb").read()
    demo = open(write_criteo_demo(str(tmp_path / "d.txt"), 1500, 4), "rb").read()
    assert a == b and a != c and a != demo


def test_raw_criteo_schema():
    df = next(iter_control_chunks(2000, 3))
    assert df.columns == CRITEO_COLUMNS and df.height == 2000
    assert set(df["label"].unique().to_list()) == {0, 1} and 0.2 <= df["label"].mean() <= 0.3
    assert df["C1"].drop_nulls().str.contains(r"^[0-9a-f]{8}$").all()
    assert df["I1"].null_count() > 0 and df["C19"].null_count() > 0


def _value_ids(model, frame, name):
    """The generator's value index of each row's hex id in field ``name`` (missing -> -1)."""
    table = model.sparse[SPARSE_COLS.index(name)][1].to_list()
    index = {h: i for i, h in enumerate(table)}
    return np.array([index.get(h, -1) for h in frame[name].to_list()])


def _empirical_logit(label, mask):
    p = (label[mask].sum() + 0.5) / (mask.sum() + 1.0)
    return np.log(p / (1 - p))


@pytest.fixture(scope="module")
def rows():
    model = ControlRowModel(2026)
    return model, generate_criteo_frame(30000, 2026, model_cls=ControlRowModel)


def test_first_order_effects_are_recoverable_from_the_rows(rows):
    model, frame = rows
    label = frame["label"].to_numpy()
    for name in FIRST_ORDER:
        ids = _value_ids(model, frame, name)
        frequent = [v for v in np.unique(ids[ids >= 0]) if (ids == v).sum() >= 300]
        est = [_empirical_logit(label, ids == v) for v in frequent]
        assert len(frequent) >= 4
        assert np.corrcoef(est, model.first_order[name][frequent])[0, 1] > 0.8, name


def test_the_interest_reverses_when_stale_and_the_parity_needs_all_three_fields(rows):
    model, frame = rows
    label = frame["label"].to_numpy()
    dense = {"I3": (frame["I3"].fill_null(0).to_numpy(), frame["I3"].is_null().to_numpy())}
    fresh = model.freshness(dense) > 0
    assert 0.3 < fresh.mean() < 0.7
    effect = model.interest[np.maximum(_value_ids(model, frame, INTEREST), 0)]
    assert np.corrcoef(effect[fresh], label[fresh])[0, 1] > 0.1             # fresh: the interest helps
    assert np.corrcoef(effect[~fresh], label[~fresh])[0, 1] < -0.03         # stale: it hurts
    signs = [model.signs[name][_value_ids(model, frame, name)] for name in PARITY]
    gap = label[np.prod(signs, axis=0) > 0].mean() - label[np.prod(signs, axis=0) < 0].mean()
    for pair in ((0, 1), (0, 2), (1, 2)):                 # a pair carries less (it leaks through E[s] != 0)
        product = signs[pair[0]] * signs[pair[1]]
        assert abs(label[product > 0].mean() - label[product < 0].mean()) < 0.75 * gap
    assert gap > 0.1


def test_true_logits_are_the_rows_bayes_score(rows):
    from sklearn.metrics import roc_auc_score
    _, frame = rows
    z, label = true_logits(30000, 2026), frame["label"].to_numpy()
    assert abs((1 / (1 + np.exp(-z))).mean() - label.mean()) < 0.01
    assert roc_auc_score(label, z) > 0.84                        # the planted terms explain the labels


def test_control_expids_differ_only_by_the_residual_rule(tmp_path):
    params = {e: load_expid(CONFIG, e, data_root=str(tmp_path)) for e in CONTROL_EXPIDS}
    rule_keys = {"model", "model_id", "residual", "residual_params"}
    shared = [{k: v for k, v in p.items() if k not in rule_keys} for p in params.values()]
    assert shared[0] == shared[1] == shared[2]
    assert [params[e]["residual"] for e in CONTROL_EXPIDS] == ["deres", "prenorm", "attnres_block"]
    first = shared[0]
    assert (first["num_layers"], first["num_tokens"], first["d_model"]) == (8, 8, 32)
    assert first["source"]["generate"]["generator"] == "control"


def test_tiny_control_run_end_to_end(tmp_path):
    from fuxictr_deres.runner import run_expid
    root = str(tmp_path / "data")
    write_criteo_control(os.path.join(root, "control", "criteo_control.txt"), 3000, 2026)   # small, in place
    result = run_expid(CONFIG, "DeRes_control", data_root=root, model_root=str(tmp_path / "ckpt"),
                       overrides=dict(TINY, epochs=1), write=False)
    assert result["test"]["AUC"] > 0.55, result["test"]
