"""A bench --out folder as a committable results store (bench/store.py): records name no machine path, a clone
without test labels rebuilds them from the prepared demo dataset and checks them against each record's hash, wrong
labels are refused, a store resumes after its labels are deleted, and --reuse / diagnose / export-bars still find
their files. One real tiny bench (2 runs on the demo data) is shared by the module; each test works on a copy."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import CONFIG, REPO
from fuxictr_deres import runner
from fuxictr_deres.bench.harness import labels_path, plan, run_bench
from fuxictr_deres.bench.store import LABELS_HASH, labels_sha256
from fuxictr_deres.cli import main
from fuxictr_deres.config import DATA_ROOT_ENV, PREPARED_ROOT_ENV
from fuxictr_deres.results import read_records
from test_committed_files import MACHINE_PATH

TINY_SETS = {"epochs": 1, "num_layers": 1, "d_model": 16, "num_tokens": 4, "num_heads": 2, "ffn_ratio": 2,
             "head_hidden_units": [16], "batch_size": 2048}
SET_ARGS = [a for k, v in TINY_SETS.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def bench_argv(out, data_root, seeds="1", models="DeRes,OneTrans"):
    return (["bench", "--config", CONFIG, "--models", models, "--datasets", "demo", "--seeds", seeds, "--out", out,
             "--data_root", data_root, "--reference", "OneTrans", "--bootstrap", "20"] + SET_ARGS)


@pytest.fixture(scope="module")
def trained_store(demo_data_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("store") / "bench")
    assert main(bench_argv(out, demo_data_root)) == 0
    return out


def clone(store, folder):
    """What a git clone of a committed store holds: records, predictions (no labels), summaries."""
    folder = str(folder)
    os.makedirs(os.path.join(folder, "predictions"))
    for name in ("results.jsonl", "summary.json", "summary.csv", "summary.md"):
        shutil.copy(os.path.join(store, name), folder)
    for name in os.listdir(os.path.join(store, "predictions")):
        if not name.endswith(".labels.npy"):
            shutil.copy(os.path.join(store, "predictions", name), os.path.join(folder, "predictions"))
    return folder


@pytest.fixture
def no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    monkeypatch.delenv(PREPARED_ROOT_ENV, raising=False)


def test_records_name_no_machine_path_and_carry_the_labels_hash(trained_store, tmp_path):
    with open(os.path.join(trained_store, "results.jsonl")) as fd:
        text = fd.read()
    assert not MACHINE_PATH.search(text) and os.path.dirname(trained_store) not in text
    y = np.load(labels_path(trained_store, "demo"))
    for record in read_records(trained_store):
        assert record[LABELS_HASH] == labels_sha256(y)
        assert record["config"]["data_root"] == "DATA_ROOT" and record["config"]["prepared_root"] == "PREPARED_ROOT"
        assert record["config"]["model_root"] == f"checkpoints/{record['bench_key']}"
        assert os.path.isfile(os.path.join(trained_store, record["checkpoint"]))   # relative to the store
    # diagnose's default checkpoint and export-bars' logs are found through the relative paths
    assert os.path.isfile(runner.latest_checkpoint(trained_store, "DeRes_demo"))
    assert main(["export-bars", "--results", trained_store, "--out", str(tmp_path / "bars")]) == 0


def test_clone_without_labels_rebuilds_them_from_the_dataset(trained_store, demo_data_root, tmp_path, capsys,
                                                             no_data_env, monkeypatch):
    fresh = clone(trained_store, tmp_path / "fresh")
    # no --reference: the summary keeps the one it was made against; the data root from the environment
    monkeypatch.setenv(DATA_ROOT_ENV, demo_data_root)
    assert main(["bench", "--summary-only", "--out", fresh, "--config", CONFIG, "--bootstrap", "20"]) == 0
    assert np.array_equal(np.load(labels_path(fresh, "demo")), np.load(labels_path(trained_store, "demo")))
    before, after = (json.load(open(os.path.join(d, "summary.json"))) for d in (trained_store, fresh))
    assert [(r["reference"], r["delta_auc"], r["delta_low"]) for r in after] == \
        [(r["reference"], r["delta_auc"], r["delta_low"]) for r in before]
    assert "vs OneTrans" in capsys.readouterr().out


def test_clone_without_labels_or_data_is_a_clear_error(trained_store, tmp_path, capsys, no_data_env):
    fresh = clone(trained_store, tmp_path / "fresh")
    assert main(["bench", "--summary-only", "--out", fresh]) != 0
    message = capsys.readouterr().err
    assert "Traceback" not in message and fresh in message and "'demo'" in message and "never committed" in message
    assert f"fuxictr-deres bench --summary-only --out {fresh} --config" in message


def test_wrong_labels_are_refused(trained_store, demo_data_root, tmp_path, capsys, no_data_env):
    fresh = clone(trained_store, tmp_path / "fresh")
    np.save(labels_path(fresh, "demo"), 1 - np.load(labels_path(trained_store, "demo")))
    assert main(["bench", "--summary-only", "--out", fresh, "--config", CONFIG, "--data_root", demo_data_root]) != 0
    assert "not the ones the runs DeRes_demo seed 1, OneTrans_demo seed 1" in capsys.readouterr().err


def test_records_without_a_hash_are_accepted_with_a_warning(trained_store, tmp_path):
    fresh = clone(trained_store, tmp_path / "fresh")
    shutil.copy(labels_path(trained_store, "demo"), labels_path(fresh, "demo"))
    with open(os.path.join(fresh, "results.jsonl"), "w") as fd:
        for record in read_records(trained_store):
            record.pop(LABELS_HASH)
            fd.write(json.dumps(record) + "\n")
    with pytest.warns(UserWarning, match=f"2 run record\\(s\\) carry no {LABELS_HASH}"):
        assert main(["bench", "--summary-only", "--out", fresh]) == 0


def test_resume_after_deleting_labels(trained_store, demo_data_root, tmp_path, capsys, no_data_env):
    """The same bench command on a clone trains nothing and rebuilds the labels; one more seed is trained and its
    labels are checked against the records already there."""
    fresh = clone(trained_store, tmp_path / "fresh")
    assert main(bench_argv(fresh, demo_data_root)) == 0
    assert "0 runs trained now" in capsys.readouterr().out
    assert np.array_equal(np.load(labels_path(fresh, "demo")), np.load(labels_path(trained_store, "demo")))
    os.remove(labels_path(fresh, "demo"))
    assert main(bench_argv(fresh, demo_data_root, seeds="1,2", models="OneTrans")) == 0
    assert "1 runs trained now" in capsys.readouterr().out
    assert len({r[LABELS_HASH] for r in read_records(fresh)}) == 1 and len(read_records(fresh)) == 3


def test_reuse_of_a_cloned_store_without_labels(trained_store, demo_data_root, tmp_path, monkeypatch, no_data_env):
    fresh = clone(trained_store, tmp_path / "fresh")
    monkeypatch.setattr(runner, "train_and_evaluate", lambda *a, **k: pytest.fail("trained"))
    sweep = str(tmp_path / "sweep")
    made = run_bench(CONFIG, plan(["DeRes"], ["demo"], [1], TINY_SETS), sweep, data_root=demo_data_root,
                     progress=False, reuse=[fresh])
    assert len(made) == 1 and made[0]["copied_from"].startswith("../fresh:")
    assert np.array_equal(np.load(labels_path(sweep, "demo")), np.load(labels_path(trained_store, "demo")))
    with open(os.path.join(sweep, "results.jsonl")) as fd:
        assert not MACHINE_PATH.search(fd.read())


def test_git_ignores_what_a_store_never_commits():
    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 0
    for path in ("predictions/frappe.labels.npy", "checkpoints/0123/frappe/m.model", "logs/0123.log",
                 "locks/0123.lock", "results.csv"):
        assert ignored(f"docs/results/some_store/{path}"), path
    for path in ("predictions/0123.npy", "results.jsonl", "summary.json", "summary.md", "auc_vs_flops.png"):
        assert not ignored(f"docs/results/some_store/{path}"), path


def test_routing_removal_is_backfilled_for_a_run_recorded_without_it(trained_store, demo_data_root, tmp_path,
                                                                     capsys):
    """An older record (no routing_removal_test) gets it from its checkpoint, appended as a new record; the
    checkpoint must reproduce the recorded test AUC; OneTrans (no routing) is left alone; a second pass adds
    nothing."""
    store = str(tmp_path / "store")
    shutil.copytree(trained_store, store)
    records = read_records(store)
    deres = next(r for r in records if r["bench_model"] == "DeRes")
    measured = deres["routing_removal_test"]
    with open(os.path.join(store, "results.jsonl"), "w") as fd:
        for r in records:
            fd.write(json.dumps({k: v for k, v in r.items() if k != "routing_removal_test"}) + "\n")
    argv = ["bench", "--summary-only", "--routing-removal", "--out", store, "--config", CONFIG,
            "--data_root", demo_data_root]
    assert main(argv) == 0
    assert "DeRes_demo seed 1: routing d_AUC" in capsys.readouterr().out
    after = read_records(store)
    assert len(after) == len(records) + 1
    assert after[-1]["routing_removal_test"]["d_AUC"] == pytest.approx(measured["d_AUC"], abs=1e-9)
    summary = json.load(open(os.path.join(store, "summary.json")))
    assert next(r for r in summary if r["model"] == "DeRes")["routing_d_auc"] == pytest.approx(measured["d_AUC"])
    assert main(argv) == 0 and len(read_records(store)) == len(after)


def test_routing_removal_backfill_refuses_a_checkpoint_of_another_run(trained_store, demo_data_root, tmp_path,
                                                                      capsys):
    store = str(tmp_path / "store")
    shutil.copytree(trained_store, store)
    records = read_records(store)
    with open(os.path.join(store, "results.jsonl"), "w") as fd:
        for r in records:
            r = {k: v for k, v in r.items() if k != "routing_removal_test"}
            r["test"] = dict(r["test"], AUC=0.5)
            fd.write(json.dumps(r) + "\n")
    code = main(["bench", "--summary-only", "--routing-removal", "--out", store, "--config", CONFIG,
                 "--data_root", demo_data_root])
    assert code != 0 and "DeRes_demo seed 1" in capsys.readouterr().err
    assert len(read_records(store)) == len(records)                  # nothing appended
