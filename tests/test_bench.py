"""Benchmark harness: the weighted AUC and paired bootstrap, resuming after a kill, predictions saved, summary
files with the paired difference. Training is replaced by a fake that evaluates fixed predictions."""

import json
import os

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fuxictr_deres import runner
from fuxictr_deres.bench.bootstrap import RankedScores, paired_auc_difference
from fuxictr_deres.bench.harness import labels_path, plan, prediction_path, run_bench, spec_key
from fuxictr_deres.bench.summary import write_summary
from fuxictr_deres.cli import main
from fuxictr_deres.config import load_expid
from fuxictr_deres.errors import ConfigError
from fuxictr_deres.results import read_records
from conftest import CONFIG

SMALL = {"epochs": 1, "num_layers": 1, "d_model": 16, "num_tokens": 4}


def test_weighted_auc_matches_sklearn_on_repeated_rows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.round(rng.random(400) + 0.3 * y, 2)                      # rounding makes ties
    w = np.bincount(rng.integers(0, 400, 400), minlength=400)
    ranked = RankedScores(y, p)
    assert ranked.auc() == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert ranked.auc(w) == pytest.approx(roc_auc_score(np.repeat(y, w), np.repeat(p, w)), abs=1e-12)


def test_paired_bootstrap_interval():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 3000)
    strong = [y + rng.normal(0, 1.0, 3000) for _ in range(2)]
    weak = [y + rng.normal(0, 1.6, 3000) for _ in range(2)]
    same = paired_auc_difference(y, strong, strong, num_boot=50)
    assert same["delta"] == 0 and same["low"] == 0 and same["high"] == 0
    res = paired_auc_difference(y, strong, weak, num_boot=200)
    assert res["low"] < res["delta"] < res["high"] and res["low"] > 0 and res["num_pairs"] == 2
    assert res["interval"] == "seeds+rows"


def _seed_runs(y, noise, skills):
    """One run per seed s: score skill_s * y + a fixed row-level noise draw of that seed."""
    return [skill * y + e for skill, e in zip(skills, noise)]


def test_hierarchical_interval_widens_with_seed_variance_at_fixed_row_noise():
    """Same test rows and row-level noise, the same mean skill gap; only the seed-to-seed spread of model A's skill
    differs. Rows-only resampling would hardly see it; the seeds+rows interval must widen."""
    rng = np.random.default_rng(3)
    n, seeds = 2000, 5
    y = rng.integers(0, 2, n).astype(np.float64)
    noise_a, noise_b = rng.normal(0, 1, (seeds, n)), rng.normal(0, 1, (seeds, n))
    ref = _seed_runs(y, noise_b, [1.0] * seeds)
    steady = paired_auc_difference(y, _seed_runs(y, noise_a, [1.3] * seeds), ref, num_boot=300)
    spread = paired_auc_difference(y, _seed_runs(y, noise_a, [0.8, 1.05, 1.3, 1.55, 1.8]), ref, num_boot=300)
    assert spread["seed_std"] > 3 * steady["seed_std"]
    assert spread["high"] - spread["low"] > 2 * (steady["high"] - steady["low"])
    assert spread["low"] < spread["delta"] < spread["high"]


def test_paired_difference_point_estimate_is_exact_and_the_interval_deterministic():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 500)
    a = [y + rng.normal(0, 1, 500) for _ in range(3)]
    b = [y + rng.normal(0, 1.3, 500) for _ in range(3)]
    per_seed = [roc_auc_score(y, pa) - roc_auc_score(y, pb) for pa, pb in zip(a, b)]
    res = paired_auc_difference(y, a, b, num_boot=100, seed=7)
    assert res["delta"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert res["per_seed"] == pytest.approx(per_seed, abs=1e-12)
    assert res["seed_std"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    assert paired_auc_difference(y, a, b, num_boot=100, seed=7) == res
    assert paired_auc_difference(y, a, b, num_boot=100, seed=8)["low"] != res["low"]

    one = paired_auc_difference(y, a[:1], b[:1], num_boot=100)         # one pair: the seed level degenerates
    assert one["interval"] == "rows" and np.isnan(one["seed_std"]) and one["low"] < one["delta"] < one["high"]


class FakeData:
    feature_map = None


def fake_trainer(fail_on=None):
    """train_and_evaluate stand-in: one 'validation' round, then the 'test' evaluation on fixed rows."""
    y = np.random.default_rng(0).integers(0, 2, 500).astype(np.float64)

    class Model:
        def evaluate_metrics(self, y_true, y_pred, metrics, group_id=None):
            return {"AUC": roc_auc_score(y_true, y_pred), "logloss": 0.5}

    def train_and_evaluate(params, data, on_eval=None):
        if fail_on == (params["model"], params["seed"]):
            raise KeyboardInterrupt("killed")
        model = Model()
        on_eval(0, {"AUC": 0.5}, model)
        skill = 1.0 if params["model"] == "DeRes" else 0.6
        noise = np.random.default_rng(params["seed"]).normal(0, 1, len(y))
        test = model.evaluate_metrics(y, skill * y + noise, ["AUC", "logloss"])
        return {"expid": params["model_id"], "model": params["model"], "dataset_id": params["dataset_id"],
                "seed": params["seed"], "valid": test, "test": test, "num_params": 10, "best_epoch": 1,
                "train_samples_per_s": 100.0, "infer_samples_per_s": 200.0, "peak_memory_mb": 1.0,
                "routing_removal_test": {"d_AUC": 0.001 * params["seed"]} if params["model"] == "DeRes" else None,
                "config": dict(params)}
    return train_and_evaluate


def test_resume_predictions_and_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "load_data", lambda params: FakeData())
    out = str(tmp_path / "bench")
    specs = plan(["DeRes", "OneTrans"], ["demo"], [1, 2], SMALL)
    monkeypatch.setattr(runner, "train_and_evaluate", fake_trainer(fail_on=("OneTrans", 2)))
    with pytest.raises(KeyboardInterrupt):
        run_bench(CONFIG, specs, out, progress=False)
    assert len(read_records(out)) == 3                           # the killed run left nothing behind
    assert not os.path.exists(prediction_path(out, spec_key(CONFIG, specs[-1])))
    monkeypatch.setattr(runner, "train_and_evaluate", fake_trainer())
    made = run_bench(CONFIG, specs, out, progress=False)
    assert [r["bench_key"] for r in made] == [spec_key(CONFIG, specs[-1])]     # only the killed run is redone
    assert run_bench(CONFIG, specs, out, progress=False) == []
    assert len(np.load(labels_path(out, "demo"))) == 500
    assert all(os.path.exists(prediction_path(out, spec_key(CONFIG, s))) for s in specs)
    assert all(r["flops_per_sample"] > 0 for r in read_records(out))
    rows = write_summary(out, "DeRes", num_boot=50)
    onetrans = next(r for r in rows if r["model"] == "OneTrans")
    assert onetrans["paired_seeds"] == 2 and onetrans["delta_high"] < 0
    assert onetrans["delta_interval"] == "seeds+rows" and onetrans["delta_seed_std"] >= 0
    assert [s.split(":")[0] for s in onetrans["delta_per_seed"].split(",")] == ["1", "2"]
    for name in ("summary.csv", "summary.json", "summary.md", "auc_vs_flops.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    table = open(os.path.join(out, "summary.md")).read()
    assert "dAUC vs DeRes" in table and "seeds+rows bootstrap" in table and "(2 seeds)" in table
    header = open(os.path.join(out, "summary.csv")).readline().strip().split(",")
    assert header[:19] == ["model", "dataset", "variant", "num_seeds", "seeds", "auc_mean", "auc_std", "logloss_mean",
                           "logloss_std", "delta_auc", "delta_low", "delta_high", "paired_seeds", "num_params",
                           "flops_per_sample", "train_samples_per_s", "infer_samples_per_s", "peak_memory_mb",
                           "best_epoch_mean"]                          # the columns before issue 14, unchanged
    assert {"delta_seed_std", "delta_interval", "delta_per_seed", "reference"} <= set(header)
    assert json.load(open(os.path.join(out, "summary.json")))[0]["num_seeds"] == 2
    deres = next(r for r in rows if r["model"] == "DeRes")
    assert deres["routing_d_auc"] == pytest.approx(0.0015) and onetrans["routing_d_auc"] != onetrans["routing_d_auc"]
    assert "routing dAUC (test)" in table and "| +0.0015 |" in table


def test_unknown_expid_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="NoSuchModel_demo"):
        run_bench(CONFIG, plan(["NoSuchModel"], ["demo"], [1]), str(tmp_path), progress=False)


def test_summary_only_command(tmp_path, capsys):
    assert main(["bench", "--summary-only", "--out", str(tmp_path)]) == 0
    assert "summary.csv" in capsys.readouterr().out


def test_backbone_at_its_own_structure_is_paired_with_the_only_reference_variant(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "load_data", lambda params: FakeData())
    monkeypatch.setattr(runner, "train_and_evaluate", fake_trainer())
    out = str(tmp_path / "bench")
    run_bench(CONFIG, plan(["OneTrans"], ["demo"], [1, 2], SMALL), out, progress=False)
    run_bench(CONFIG, plan(["DeRes"], ["demo"], [1, 2], dict(SMALL, d_model=8)), out, progress=False)
    deres = next(r for r in write_summary(out, "OneTrans", num_boot=50) if r["model"] == "DeRes")
    assert deres["variant"] != json.dumps(SMALL, sort_keys=True)
    assert deres["paired_seeds"] == 2 and deres["delta_low"] > 0

    # two reference variants: which one a third variant should be paired with is ambiguous, so none is
    run_bench(CONFIG, plan(["OneTrans"], ["demo"], [1, 2], dict(SMALL, d_model=8)), out, progress=False)
    run_bench(CONFIG, plan(["DeRes"], ["demo"], [1], dict(SMALL, d_model=12)), out, progress=False)
    rows = write_summary(out, "OneTrans", num_boot=50)
    lone = next(r for r in rows if r["model"] == "DeRes" and '"d_model": 12' in r["variant"])
    assert lone["delta_auc"] is None and lone["paired_seeds"] == 0


def test_an_ablation_of_the_reference_is_paired_with_the_reference_without_overrides(tmp_path, monkeypatch):
    """``bench --models OneTrans --set X`` next to ``bench --models OneTrans``: the variant's dAUC is what X
    changed (the fake trainer's predictions depend on model and seed only, so the difference is exactly 0)."""
    monkeypatch.setattr(runner, "load_data", lambda params: FakeData())
    monkeypatch.setattr(runner, "train_and_evaluate", fake_trainer())
    out = str(tmp_path / "bench")
    run_bench(CONFIG, plan(["OneTrans"], ["demo"], [1, 2]), out, progress=False)
    run_bench(CONFIG, plan(["OneTrans"], ["demo"], [1, 2], {"d_model": 8}), out, progress=False)
    rows = write_summary(out, "OneTrans", num_boot=20)
    base = next(r for r in rows if r["variant"] == "{}")
    ablation = next(r for r in rows if r["variant"] != "{}")
    assert base["delta_auc"] is None and base["paired_seeds"] == 0
    assert ablation["paired_seeds"] == 2 and ablation["delta_auc"] == 0.0
    table = open(os.path.join(out, "summary.md")).read().splitlines()
    assert "+0.0000 [+0.0000, +0.0000] (2 seeds)" in next(line for line in table if "d_model" in line)


def test_reuse_copies_runs_of_an_identical_training_config_and_trains_the_rest(tmp_path, monkeypatch, capsys):
    """A table run at the expid's own learning rate is the sweep's run with that rate spelled out: it is copied
    (same predictions, source named), not trained; a seed the table lacks is trained."""
    monkeypatch.setattr(runner, "load_data", lambda params: FakeData())
    monkeypatch.setattr(runner, "train_and_evaluate", fake_trainer())
    table, sweep = str(tmp_path / "table"), str(tmp_path / "sweep")
    run_bench(CONFIG, plan(["DeRes", "OneTrans"], ["demo"], [1], SMALL), table, progress=False)

    trained, inner = [], fake_trainer()

    def counting_trainer(params, data, on_eval=None):
        trained.append(params["seed"])
        return inner(params, data, on_eval)
    monkeypatch.setattr(runner, "train_and_evaluate", counting_trainer)
    spelled_out = dict(SMALL, learning_rate=load_expid(CONFIG, "DeRes_demo")["learning_rate"])
    specs = plan(["DeRes"], ["demo"], [1, 2], spelled_out)
    assert main(["bench", "--config", CONFIG, "--models", "DeRes", "--datasets", "demo", "--seeds", "1,2",
                 "--out", sweep, "--reuse", table, "--bootstrap", "20"]
                + [a for k, v in spelled_out.items() for a in ("--set", f"{k}={v}")]) == 0
    assert "1 runs trained now, 1 copied from --reuse" in capsys.readouterr().out
    assert trained == [2]
    source = next(r for r in read_records(table) if r["model"] == "DeRes")
    copy = next(r for r in read_records(sweep) if r["seed"] == 1)
    assert copy["bench_key"] == spec_key(CONFIG, specs[0]) != source["bench_key"]
    assert copy["copied_from"].endswith(f"{source['bench_key']}") and copy["test"] == source["test"]
    assert np.array_equal(np.load(prediction_path(sweep, spec_key(CONFIG, specs[0]))),
                          np.load(prediction_path(table, source["bench_key"])))
    assert np.array_equal(np.load(labels_path(sweep, "demo")), np.load(labels_path(table, "demo")))

    # a different training config (another learning rate) is not a copy of anything
    other = str(tmp_path / "other")
    run_bench(CONFIG, plan(["DeRes"], ["demo"], [1], dict(SMALL, learning_rate=0.5)), other, progress=False,
              reuse=[table])
    assert "copied_from" not in read_records(other)[0] and trained == [2, 1]


def test_reuse_of_a_folder_without_results_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "train_and_evaluate", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FileNotFoundError, match="no results.jsonl"):
        run_bench(CONFIG, plan(["DeRes"], ["demo"], [1], SMALL), str(tmp_path / "out"), progress=False,
                  reuse=[str(tmp_path / "missing")])
