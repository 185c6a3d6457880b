"""Data-parallel training (torchrun + DDP, gloo on CPU) on the demo data, through the real entry points.

Each torchrun job starts 2 fresh interpreters; the model is tiny and trains 1 epoch so the jobs stay short."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import CONFIG, REPO, TINY
from fuxictr_deres.config import load_expid
from fuxictr_deres.runner import ExperimentData, build_model, load_data, run_expid

SETTINGS = dict(TINY, epochs=1, batch_size=512)
PROBE = os.path.join(REPO, "tests", "distributed_probe.py")


def torchrun(args, env_extra, cwd, timeout=420):
    env = dict(os.environ, OMP_NUM_THREADS="1", FUXICTR_DERES_DIST_TIMEOUT="120", **env_extra)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def run_args(data_root, model_root):
    return ["--config", CONFIG, "--expid", "DeRes_demo", "--data_root", data_root, "--model_root", model_root,
            *[f"--set={k}={json.dumps(v)}" for k, v in SETTINGS.items()]]


def test_two_processes_train_like_one(demo_data_root, tmp_path):
    one = run_expid(CONFIG, "DeRes_demo", data_root=demo_data_root, model_root=str(tmp_path / "one"),
                    overrides=SETTINGS, write=False)
    model_root = str(tmp_path / "two")
    proc, _ = torchrun(run_args(demo_data_root, model_root), {"PROBE_GUARD": "1", "PROBE_SYNC": "1"},
                       str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # the same global batches: metrics agree with one process (float reductions in another order only)
    with open(os.path.join(model_root, "results.jsonl")) as fd:
        records = [json.loads(line) for line in fd]
    assert len(records) == 1, "only rank 0 writes the record"
    two = records[0]
    assert two["world_size"] == 2 and one["world_size"] == 1
    for split in ("valid", "test"):
        assert abs(two[split]["AUC"] - one[split]["AUC"]) < 1e-3, (split, two[split], one[split])
        assert abs(two[split]["logloss"] - one[split]["logloss"]) < 1e-3
    assert two["history"][0]["epoch"] == 1 and len(two["history"]) == len(one["history"])
    # as many steps as one process (the global batch is split), and after every one the parameters were bitwise
    # equal on both ranks (the probe all-gathers them)
    steps = len([line for line in out.splitlines() if line.startswith("PROBE parameters identical")])
    assert steps == two["history"][-1]["step"] == one["history"][-1]["step"], out[-2000:]
    assert "Parameters bitwise identical on 2 ranks" in open(two["log"]).read()
    with open(os.path.join(model_root, "results.csv")) as fd:
        assert len(fd.readlines()) == 1
    assert out.count("DeRes_demo (model DeRes") == 1               # rank 0 reports the run
    # the checkpoint rank 0 wrote loads in one process (no DDP `module.` prefix) and gives the recorded test AUC
    params = load_expid(CONFIG, "DeRes_demo", data_root=demo_data_root, model_root=model_root)
    params.update(SETTINGS)
    data: ExperimentData = load_data(params)
    model = build_model(params, data.feature_map)
    model.load_weights(two["checkpoint"])
    test = model.evaluate(data.loaders(params, "test"))
    assert test["AUC"] == pytest.approx(two["test"]["AUC"], abs=1e-6)


def test_a_failing_rank_ends_the_job_with_its_message(demo_data_root, tmp_path):
    model_root = str(tmp_path / "fail")
    proc, seconds = torchrun(run_args(demo_data_root, model_root), {"PROBE_FAIL_RANK": "1"}, str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "RuntimeError: injected failure on rank 1" in out, out[-4000:]
    assert not os.path.exists(os.path.join(model_root, "results.jsonl"))
    assert seconds < 300          # torchrun's agent stopped rank 0, which was waiting in the gradient all-reduce


def test_bench_nproc_gathers_the_whole_test_split_in_file_order(demo_data_root, tmp_path):
    from sklearn.metrics import roc_auc_score

    from fuxictr_deres.bench.harness import labels_path, plan, prediction_path, run_bench
    out = str(tmp_path / "bench")
    specs = plan(["DeRes"], ["demo"], [1], overrides=SETTINGS)
    [record] = run_bench(CONFIG, specs, out, data_root=demo_data_root, progress=False, nproc=2)
    assert record["world_size"] == 2
    y_true, y_pred = np.load(labels_path(out, "demo")), np.load(prediction_path(out, record["bench_key"]))
    stored = np.load(os.path.join(demo_data_root, "demo", "test", "label.npy"))
    np.testing.assert_array_equal(y_true, stored)             # rank 0 put the shards back in file order
    assert roc_auc_score(y_true, y_pred) == pytest.approx(record["test"]["AUC"], abs=1e-5)
    assert os.path.isfile(os.path.join(out, "logs", f"{record['bench_key']}.log"))


def test_tune_nproc_trains_each_trial_on_two_processes(demo_data_root, tmp_path):
    import optuna
    from test_tuning import write_space

    from fuxictr_deres.tuning.study import StudyOptions, run_study
    space = write_space(tmp_path, fixed=dict(SETTINGS, eval_steps=None), tuner_space={"learning_rate": [1.e-3]})
    opts = StudyOptions(space_path=space, trials=1, out=str(tmp_path / "out"), sampler="grid", pruner="median",
                        data_root=demo_data_root, progress=False, nproc=2)
    [trial] = run_study(opts).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.user_attrs["epochs"] == 1
    assert list(trial.intermediate_values.values()) == [trial.value]      # rank 0 reported to the worker's trial
    [record] = [json.loads(line) for line in open(tmp_path / "out" / "results.jsonl")]
    assert record["world_size"] == 2 and record["valid"]["AUC"] == trial.value
