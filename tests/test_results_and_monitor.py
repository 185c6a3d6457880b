"""The results writer appends whole records under concurrency; the training monitor stops on a NaN loss."""

import json
import multiprocessing as mp
import os

import pytest

from conftest import build_model, toy_batch
from fuxictr_deres.errors import NonFiniteLossError
from fuxictr_deres.models import DeRes
from fuxictr_deres.results import append_line, read_records, write_result
from fuxictr_deres.training_monitor import TrainingMonitor


def _append_many(path: str, worker: int, count: int) -> None:
    for i in range(count):
        append_line(path, json.dumps({"worker": worker, "i": i, "pad": "x" * 5000}))


def test_concurrent_appends_never_tear_lines(tmp_path):
    path = str(tmp_path / "results.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    with open(path) as fd:
        rows = [json.loads(line) for line in fd]
    assert len(rows) == 200
    assert {(r["worker"], r["i"]) for r in rows} == {(w, i) for w in range(4) for i in range(50)}


def test_write_result_keeps_earlier_records_and_fuxictr_line(tmp_path):
    record = {"expid": "DeRes_demo", "dataset_id": "demo", "valid": {"AUC": 0.7}, "test": {"AUC": 0.71,
              "logloss": 0.5}, "config": {"lr": float("nan"), "cls": DeRes}}
    write_result(str(tmp_path), record, "run_expid.py --expid DeRes_demo")
    write_result(str(tmp_path), dict(record, expid="OneTrans_demo"), "run_expid.py --expid OneTrans_demo")
    records = read_records(str(tmp_path))
    assert [r["expid"] for r in records] == ["DeRes_demo", "OneTrans_demo"]
    assert records[0]["config"] == {"lr": "nan", "cls": "DeRes"}
    lines = open(os.path.join(tmp_path, "results.csv")).read().splitlines()
    assert len(lines) == 2 and ",[exp_id] DeRes_demo,[dataset_id] demo,[train] N.A.," in lines[0]
    assert lines[0].endswith("[test] AUC: 0.710000 - logloss: 0.500000")


def test_multiline_record_is_refused(tmp_path):
    with pytest.raises(ValueError):
        append_line(str(tmp_path / "x"), "a\nb")


def test_nan_loss_stops_with_a_clear_error(feature_map):
    model = build_model(DeRes, feature_map)
    model._max_gradient_norm = 10.0
    model._epoch_index, model._batch_index = 0, 3
    monitor = TrainingMonitor(model, context="expid DeRes_demo")
    model.compute_loss = lambda return_dict, y_true: return_dict["y_pred"].sum() * float("nan")
    with pytest.raises(NonFiniteLossError, match=r"expid DeRes_demo: training loss became nan at epoch 1, batch 4"):
        model.train_step(toy_batch())
    assert monitor.train_samples == 32
