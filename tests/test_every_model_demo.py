"""Every registered model and every residual rule trains one epoch on the demo data through the runner
(the code path of run_expid.py) with a finite loss and AUC above chance."""

import math

import pytest

from conftest import CONFIG
from fuxictr_deres.config import list_expids, load_expid
from fuxictr_deres.models import MODELS
from fuxictr_deres.residuals import RESIDUAL_RULES
from fuxictr_deres.runner import run_expid

EXPIDS = sorted(e for e in list_expids(CONFIG) if e.endswith("_demo"))
#: the shared token backbone at a size two CPU cores train in seconds (the rules need nothing bigger)
SMALL_BACKBONE = {"d_model": 32, "num_layers": 2, "num_tokens": 8}
ABSTRACT = {"TokenCTR"}


def demo_expid_of_model(name):
    return f"{name}_demo"


def demo_expid_of_rule(rule):
    for expid in EXPIDS:
        params = load_expid(CONFIG, expid)
        if params["model"] in ("OneTrans", "DeRes", "TokenCTR") and params.get("residual") == rule:
            return expid
    return None


def train_one_epoch(expid, data_root, model_root, small=False):
    overrides = {"epochs": 1, "verbose": 0, **(SMALL_BACKBONE if small else {})}
    record = run_expid(CONFIG, expid, data_root=data_root, model_root=model_root, overrides=overrides, write=False)
    assert math.isfinite(record["test"]["logloss"]) and math.isfinite(record["valid"]["logloss"])
    assert record["test"]["AUC"] > 0.55, (expid, record["test"])
    return record


@pytest.mark.parametrize("model", sorted(set(MODELS) - ABSTRACT))
def test_every_model_trains_on_demo(model, demo_data_root, tmp_path):
    expid = demo_expid_of_model(model)
    assert expid in EXPIDS, f"no {expid} in benchmark_configs"
    record = train_one_epoch(expid, demo_data_root, str(tmp_path))
    assert record["model"] == model


@pytest.mark.parametrize("rule", sorted(RESIDUAL_RULES))
def test_every_residual_rule_trains_on_demo(rule, demo_data_root, tmp_path):
    expid = demo_expid_of_rule(rule)
    if expid is None:
        pytest.skip(f"residual rule {rule!r} has no OneTrans-backbone demo expid (it belongs to another backbone)")
    train_one_epoch(expid, demo_data_root, str(tmp_path), small=True)
