"""The expids are the protocol: every run of a committed table trained what its expid resolves to today.

Each folder of ``TABLES`` holds a bench's ``results.jsonl`` (one record per run, with the run's resolved config);
running ``python run_expid.py --config benchmark_configs --expid <record expid> --seed <record seed>`` with no
``--set`` must train the same thing, or, for a row the bench ran with ``--set`` overrides (its ``bench_variant``),
the same command with those overrides. Compared: every key the model's constructors (along its class hierarchy)
name, plus the data and training-loop keys FuxiCTR reads outside them; paths and log verbosity are not compared.
"""

import inspect
import json
import os

import pytest

from conftest import CONFIG, REPO
from fuxictr_deres.config import apply_overrides, load_expid
from fuxictr_deres.models import get_model_class

TABLES = ["docs/results/converged_frappe", "docs/results/converged_movielens", "docs/results/control",
          "docs/results/control_probes", "docs/results/control_depth16", "docs/results/regularised_frappe",
          "docs/results/netreg_frappe", "docs/results/netreg_movielens"]
LOOP_KEYS = ("model", "dataset_id", "seed", "batch_size", "epochs", "shuffle", "optimizer", "loss", "learning_rate",
             "embedding_dim", "feature_cols", "label_col", "min_categr_count", "feature_processor", "source",
             "early_stop_patience", "reduce_lr_on_plateau", "monitor", "monitor_mode", "eval_steps",
             "save_best_only", "embedding_regularizer", "net_regularizer", "max_gradient_norm")
NOT_COMPARED = ("model_id", "model_root", "data_root", "config_dir", "verbose", "gpu", "feature_map")


def training_keys(model_name: str) -> set:
    keys = set(LOOP_KEYS)
    for cls in get_model_class(model_name).__mro__:
        if "__init__" in vars(cls):
            keys.update(name for name, p in inspect.signature(cls.__init__).parameters.items()
                        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return keys - set(NOT_COMPARED) - {"self"}


def table_records() -> list:
    params = []
    for folder in TABLES:
        path = os.path.join(REPO, folder, "results.jsonl")
        with open(path) as fd:
            for line_no, line in enumerate(fd, 1):
                if line.strip():
                    params.append(pytest.param(json.loads(line), id=f"{os.path.basename(folder)}:{line_no}"))
    return params


@pytest.mark.parametrize("record", table_records())
def test_table_row_is_what_its_expid_trains(record):
    expid_config = apply_overrides(load_expid(CONFIG, record["expid"]), json.loads(record.get("bench_variant", "{}")))
    expid_config["seed"] = record["seed"]
    run_config = record["config"]
    keys = training_keys(record["model"]) & (set(expid_config) | set(run_config))
    differing = {k: (run_config.get(k), expid_config.get(k)) for k in sorted(keys)
                 if json.dumps(run_config.get(k), sort_keys=True) != json.dumps(expid_config.get(k), sort_keys=True)}
    assert not differing, f"{record['expid']} seed {record['seed']}: (table run, expid today) {differing}"


def test_every_table_exists_and_names_each_rows_expid_and_seed():
    for folder in TABLES:
        records = [json.loads(line) for line in open(os.path.join(REPO, folder, "results.jsonl")) if line.strip()]
        assert records and all(r["expid"] and isinstance(r["seed"], int) for r in records)
        summary = open(os.path.join(REPO, folder, "summary.md")).read()
        for r in records:
            assert r["expid"].split("_")[0] in summary
