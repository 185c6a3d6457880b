"""FuxiCTR-style grid search against Optuna (TPE + pruning) at an equal trial count, on one space file.

Both run as studies in the same storage (``<study>_grid``: GridSampler over the tuner_space lists, no pruning, as
FuxiCTR's autotuner; ``<study>_tpe``: seeded TPE with the median pruner), with FuxiCTR's early stopping in both.
Reported: the best validation value of each, the training epochs each spent, and the epochs Optuna had spent when
it first reached the grid's best (the equal-budget comparison).
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

import optuna
from optuna.trial import TrialState

from .outputs import write_outputs
from .report import format_params
from .study import StudyOptions, run_study


def first_trials(study: optuna.Study, first: Optional[int] = None) -> List[optuna.trial.FrozenTrial]:
    """The study's trials by number, only the first ``first`` of them when given (an equal-trial cut)."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return trials if first is None else trials[:first]


def study_summary(study: optuna.Study, target: Optional[float] = None, first: Optional[int] = None) -> Dict[str, Any]:
    """Best value, total epochs, and the cumulative epochs (by trial number) at which ``target`` was reached, over
    the study's first ``first`` trials (all when None)."""
    return summarize_trials(first_trials(study, first), maximizing(study), target)


def maximizing(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def summarize_trials(trials: List[optuna.trial.FrozenTrial], maximize: bool,
                     target: Optional[float] = None) -> Dict[str, Any]:
    """``study_summary`` of trials already cut and ordered by number."""
    better = (lambda a, b: a >= b) if maximize else (lambda a, b: a <= b)
    spent, reached_at, best = 0.0, None, None
    for t in trials:
        spent += float(t.user_attrs.get("epochs", 0.0) or 0.0)
        if t.state != TrialState.COMPLETE:
            continue
        if best is None or better(t.value, best) and t.value != best:
            best = t.value
        if target is not None and reached_at is None and better(t.value, target):
            reached_at = spent
    states = [t.state.name for t in trials]
    return {"best": best, "epochs": spent, "epochs_to_target": reached_at, "trials": len(states),
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "failed": states.count("FAIL")}


def compare_grid_tpe(options: StudyOptions) -> Dict[str, Any]:
    """Run both studies with ``options.trials`` trials each; write ``<out>/compare.json`` and return the numbers."""
    opts = options.resolved()
    name = opts.study_name
    runs = {}
    for kind, sampler, pruner in (("grid", "grid", "none"), ("tpe", "tpe", opts.pruner)):
        sub = dataclasses.replace(opts, study_name=f"{name}_{kind}", sampler=sampler, pruner=pruner,
                                  out=os.path.join(opts.out, kind))
        study = run_study(sub)
        write_outputs(study, sub)
        runs[kind] = study
    grid = study_summary(runs["grid"])
    tpe = study_summary(runs["tpe"], target=grid["best"])
    result = {"space": opts.space_path, "trials": opts.trials, "grid": grid, "tpe": tpe}
    with open(os.path.join(opts.out, "compare.json"), "w") as fd:
        json.dump(result, fd, indent=2)
    return result


def format_value(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.6f}"


def format_comparison(result: Dict[str, Any]) -> List[str]:
    """The lines ``tune --compare-grid`` prints."""
    grid, tpe = result["grid"], result["tpe"]
    reach = tpe["epochs_to_target"]
    return [f"{'':22s}{'grid (FuxiCTR)':>16s}{'Optuna TPE+prune':>18s}",
            f"{'best validation':22s}{format_value(grid['best']):>16s}{format_value(tpe['best']):>18s}",
            f"{'training epochs':22s}{grid['epochs']:>16.2f}{tpe['epochs']:>18.2f}",
            f"{'trials c/p/f':22s}{'%d/%d/%d' % (grid['complete'], grid['pruned'], grid['failed']):>16s}"
            f"{'%d/%d/%d' % (tpe['complete'], tpe['pruned'], tpe['failed']):>18s}",
            "Optuna reached the grid's best after "
            + (f"{reach:.2f} epochs" if reach is not None else "- (not reached)")
            + f" (grid spent {grid['epochs']:.2f})"]


def best_trial_row(study: optuna.Study, metric: str = "AUC", first: Optional[int] = None,
                   target: Optional[float] = None) -> Dict[str, Any]:
    """One study at a glance over its first ``first`` trials: the ``study_summary`` budget figures (with the
    epochs spent when ``target`` was first reached), plus the best-validation trial's number, its validation and
    test ``metric`` (the test figure of the configuration a user would pick) and its parameters."""
    trials = first_trials(study, first)
    row = {"study": study.study_name, **summarize_trials(trials, maximizing(study), target)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return {**row, "best_trial": None, f"valid_{metric}": None, f"test_{metric}": None, "params": {}}
    pick = max if maximizing(study) else min
    best = pick(complete, key=lambda t: t.value)
    return {**row, "best_trial": best.number, f"valid_{metric}": best.user_attrs.get(f"valid_{metric}", best.value),
            f"test_{metric}": best.user_attrs.get(f"test_{metric}"),
            "params": best.user_attrs.get("overrides", best.params)}


def format_study_rows(rows: List[Dict[str, Any]], metric: str = "AUC") -> List[str]:
    """A markdown table of ``best_trial_row`` rows, one study per line; the last column is the epochs each study
    had spent when it first reached the target its row was made with (the first row's best, in the script)."""
    lines = [f"| study | trials (complete/pruned/failed) | training epochs | best trial | valid {metric} | "
             f"test {metric} | parameters | epochs to reach the target |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        reach = "not reached" if r["epochs_to_target"] is None else f"{r['epochs_to_target']:.0f}"
        lines.append(f"| {r['study']} | {r['trials']} ({r['complete']}/{r['pruned']}/{r['failed']}) | "
                     f"{r['epochs']:.0f} | {r['best_trial']} | {format_value(r[f'valid_{metric}'])} | "
                     f"{format_value(r[f'test_{metric}'])} | {format_params(r['params'])} | {reach} |")
    return lines
