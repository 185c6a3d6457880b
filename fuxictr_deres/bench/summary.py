"""Summary of a benchmark folder: per model, dataset and variant (overrides), over seeds

    test AUC and logloss mean +- std (sample std), the paired AUC difference to the reference model (same dataset;
    the reference's runs under the same overrides, or its only variant there; seeds matched by seed): the mean of
    the per-seed differences d_s, their std (``delta_seed_std``) and a 95% interval from a two-level bootstrap over
    seeds, then test rows (bootstrap.py; ``delta_interval`` says what it covers: "seeds+rows", or "rows" when only
    one seed is paired), params, analytic FLOPs/sample, train and inference samples/s, peak memory, best epoch,
    and for routing rules the mean test-AUC change of removing the routing (``routing_d_auc``: AUC as trained minus
    AUC with the routing removed, over the seeds whose record has it; runner.routing_removal_on_test);

written as ``summary.csv``, ``summary.json`` and ``summary.md`` (+ ``auc_vs_flops.png`` from figures.py).
"""

import csv
import json
import os
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np

from ..results import read_records
from .bootstrap import INTERVAL_ROWS, paired_auc_difference
from .store import DataRoots, ensure_labels

COLUMNS = ["model", "dataset", "variant", "num_seeds", "seeds", "auc_mean", "auc_std", "logloss_mean",
           "logloss_std", "delta_auc", "delta_low", "delta_high", "paired_seeds", "num_params", "flops_per_sample",
           "train_samples_per_s", "infer_samples_per_s", "peak_memory_mb", "best_epoch_mean",
           # added with the hierarchical interval (issue 14): older readers ignore them
           "delta_seed_std", "delta_interval", "delta_per_seed", "reference", "routing_d_auc"]


def bench_records(out_dir: str) -> List[dict]:
    """The harness records of ``out_dir``: the last one per model, dataset, variant and seed (after an edit of an
    expid's YAML its new run replaces the stale one)."""
    latest = OrderedDict()
    for r in read_records(out_dir):
        if "bench_key" in r:
            latest[(r.get("bench_model"), r.get("dataset_id"), r.get("bench_variant"), r.get("seed"))] = r
    return list(latest.values())


def _metric(record: dict, name: str) -> float:
    test = record.get("test", {})
    for key, value in test.items():
        if key.lower() == name.lower():
            return float(value)
    return float("nan")


def _std(values: List[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def group_records(records: List[dict]) -> "OrderedDict[tuple, List[dict]]":
    groups: "OrderedDict[tuple, List[dict]]" = OrderedDict()
    for r in records:
        groups.setdefault((r["bench_model"], r["dataset_id"], r.get("bench_variant", "{}")), []).append(r)
    for runs in groups.values():
        runs.sort(key=lambda r: r["seed"])
    return groups


def summarize(out_dir: str, reference: Optional[str] = None, num_boot: int = 1000,
              roots: Optional[DataRoots] = None) -> List[Dict]:
    """One row per (model, dataset, variant); see the module docstring. The test labels of a dataset are read from
    the store, or rebuilt from the dataset found through ``roots`` when the store has none (store.py)."""
    groups = group_records(bench_records(out_dir))
    labels: Dict[str, np.ndarray] = {}

    def test_labels(dataset: str) -> np.ndarray:
        if dataset not in labels:
            labels[dataset] = ensure_labels(out_dir, dataset, roots)
        return labels[dataset]

    rows = []
    for (model, dataset, variant), runs in groups.items():
        aucs = [_metric(r, "AUC") for r in runs]
        losses = [_metric(r, "logloss") for r in runs]
        row = {"model": model, "dataset": dataset, "variant": variant, "num_seeds": len(runs),
               "seeds": ",".join(str(r["seed"]) for r in runs), "auc_mean": _mean(aucs), "auc_std": _std(aucs),
               "logloss_mean": _mean(losses), "logloss_std": _std(losses), "delta_auc": None, "delta_low": None,
               "delta_high": None, "paired_seeds": 0, "num_params": runs[0].get("num_params"),
               "flops_per_sample": runs[0].get("flops_per_sample"),
               "train_samples_per_s": _mean(r.get("train_samples_per_s") for r in runs),
               "infer_samples_per_s": _mean(r.get("infer_samples_per_s") for r in runs),
               "peak_memory_mb": max((r.get("peak_memory_mb") or 0) for r in runs),
               "best_epoch_mean": _mean(r.get("best_epoch") for r in runs),
               "delta_seed_std": None, "delta_interval": None, "delta_per_seed": None, "reference": reference,
               "routing_d_auc": _mean((r.get("routing_removal_test") or {}).get("d_AUC") for r in runs)}
        ref_runs = _reference_runs(groups, reference, dataset, variant, model) if reference else None
        if ref_runs and ref_runs is not runs:
            row.update(_paired(out_dir, test_labels, dataset, runs, ref_runs, num_boot))
        rows.append(row)
    return rows


def _reference_runs(groups: "OrderedDict[tuple, List[dict]]", reference: str, dataset: str,
                    variant: str, model: Optional[str] = None) -> Optional[List[dict]]:
    """The reference's runs under the same overrides; failing that, its only variant on the dataset. A backbone
    run at its own published structure (other overrides) is still paired on the same test rows, which is what the
    bootstrap needs; with several reference variants the choice would be ambiguous, so there is none.

    A variant of the reference itself (an ablation: ``bench --models OneTrans --set readout=mean``) is paired with
    the reference's runs without overrides, so its dAUC is what the override changed."""
    if model == reference and variant != "{}" and (reference, dataset, "{}") in groups:
        return groups[(reference, dataset, "{}")]
    same = groups.get((reference, dataset, variant))
    if same:
        return same
    others = [runs for (m, d, _), runs in groups.items() if m == reference and d == dataset]
    return others[0] if len(others) == 1 else None


def _paired(out_dir: str, test_labels, dataset: str, runs: List[dict], ref_runs: List[dict], num_boot: int) -> dict:
    by_seed = {r["seed"]: r for r in ref_runs}
    pairs = [(r, by_seed[r["seed"]]) for r in runs if r["seed"] in by_seed]
    if not pairs:
        return {}
    y = test_labels(dataset)
    load = lambda r: np.load(os.path.join(out_dir, r["predictions"]))
    res = paired_auc_difference(y, [load(a) for a, _ in pairs], [load(b) for _, b in pairs], num_boot=num_boot)
    return {"delta_auc": res["delta"], "delta_low": res["low"], "delta_high": res["high"],
            "paired_seeds": len(pairs), "delta_seed_std": None if len(pairs) < 2 else res["seed_std"],
            "delta_interval": res["interval"],
            "delta_per_seed": ",".join(f"{a['seed']}:{d:+.6f}" for (a, _), d in zip(pairs, res["per_seed"]))}


def _cell(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: List[dict], reference: Optional[str]) -> str:
    """The summary as a Markdown table, with a note on what the dAUC interval covers."""
    head = ["model", "dataset", "variant", "seeds", "test AUC", "test logloss",
            f"dAUC vs {reference}: mean of seed pairs [95% CI, seeds+rows bootstrap]", "dAUC std over seeds",
            "params", "FLOPs/sample", "train samples/s", "infer samples/s", "peak MB", "best epoch", "routing dAUC (test)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        delta, spread = ("ref", "") if r["model"] == reference else ("n/a", "n/a")
        if r["delta_auc"] is not None:                  # other models, and the reference's own variants
            covers = "1 seed: rows only" if r["delta_interval"] == INTERVAL_ROWS else f"{r['paired_seeds']} seeds"
            delta = f"{r['delta_auc']:+.4f} [{r['delta_low']:+.4f}, {r['delta_high']:+.4f}] ({covers})"
            spread = _cell(r.get("delta_seed_std"))
        lines.append("| " + " | ".join([
            r["model"], r["dataset"], "" if r["variant"] == "{}" else f"`{r['variant']}`", r["seeds"],
            f"{r['auc_mean']:.4f} +- {r['auc_std']:.4f}", f"{r['logloss_mean']:.4f} +- {r['logloss_std']:.4f}",
            delta, spread, f"{r['num_params']:,}" if r["num_params"] else "n/a",
            f"{r['flops_per_sample']:,.0f}" if r["flops_per_sample"] else "n/a",
            _cell(r["train_samples_per_s"], 0), _cell(r["infer_samples_per_s"], 0),
            _cell(r["peak_memory_mb"], 0), _cell(r["best_epoch_mean"], 1),
            "" if r["routing_d_auc"] != r["routing_d_auc"] else f"{r['routing_d_auc']:+.4f}"]) + " |")
    note = (f"\ndAUC: mean over seeds s of AUC(model, seed s) - AUC({reference}, seed s) on the same test rows; the "
            f"interval is a two-level bootstrap (seed pairs with replacement, then test rows), so it covers training "
            f"variance and test-set sampling; with 1 paired seed it covers test rows only.\n") if reference else ""
    note += ("\nrouting dAUC (test): test AUC as trained minus test AUC with the residual rule's routing removed "
             "(`diagnose` says what removal means per rule), mean over seeds; empty for models without routing "
             "and for runs recorded before the figure existed.\n")
    return "\n".join(lines) + "\n" + note


def summary_reference(out_dir: str) -> Optional[str]:
    """The reference model the existing ``summary.json`` of ``out_dir`` was made against (None if it does not say)."""
    path = os.path.join(out_dir, "summary.json")
    if not os.path.isfile(path):
        return None
    with open(path) as fd:
        return next((r["reference"] for r in json.load(fd) if r.get("reference")), None)


def write_summary(out_dir: str, reference: Optional[str] = None, num_boot: int = 1000,
                  roots: Optional[DataRoots] = None) -> List[dict]:
    """Write summary.csv/json/md and the AUC-vs-FLOPs figure; return the rows."""
    from .figures import auc_vs_flops
    rows = summarize(out_dir, reference, num_boot, roots)
    _atomic_text(os.path.join(out_dir, "summary.json"), json.dumps(rows, indent=2))
    _atomic_text(os.path.join(out_dir, "summary.md"), markdown_table(rows, reference))
    tmp = os.path.join(out_dir, f"summary.csv.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as fd:
        writer = csv.DictWriter(fd, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, os.path.join(out_dir, "summary.csv"))
    if rows:
        auc_vs_flops(rows, os.path.join(out_dir, "auc_vs_flops.png"))
    return rows


def _atomic_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fd:
        fd.write(text)
    os.replace(tmp, path)
