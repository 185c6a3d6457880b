"""A study's trials table (CSV and Markdown) and Optuna's history and parameter-importance figures (PNG)."""

import csv
import json
import os
import warnings
from typing import Any, Dict, List, Sequence

import optuna

from .recovery import DUPLICATE_ATTR, ERROR_ATTR, INTERRUPTED_ATTR, RETRY_ATTR
from .space import SearchSpace

TABLE_CSV, TABLE_MD = "trials.csv", "trials.md"
HISTORY_PNG, IMPORTANCE_PNG = "optimization_history.png", "param_importances.png"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 1e4 else f"{value:g}"
    return str(value)


def format_params(params: Dict[str, Any]) -> str:
    """``lr=0.001; layers=[64]``: a trial's parameters as one table cell (values as JSON)."""
    return "; ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def trial_rows(study: optuna.Study, space: SearchSpace, metrics: Sequence[str]) -> List[Dict[str, str]]:
    """One row per trial: number, state, params, valid/test metrics, epochs, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        params = space.decode(t.params)
        row = {"number": str(t.number), "state": t.state.name,
               "params": format_params(params)}
        for split in ("valid", "test"):
            for m in metrics:
                row[f"{split}_{m}"] = _fmt(t.user_attrs.get(f"{split}_{m}"))
        row["epochs"] = _fmt(t.user_attrs.get("epochs"))
        notes = [t.user_attrs.get(ERROR_ATTR) or t.user_attrs.get(INTERRUPTED_ATTR) or ""]
        if not notes[0] and t.state == optuna.trial.TrialState.FAIL:
            notes[0] = "no error recorded: the worker stopped (killed, or no heartbeat)"
        if RETRY_ATTR in t.user_attrs:
            notes.append(f"retry of trial {t.user_attrs[RETRY_ATTR]}")
        if DUPLICATE_ATTR in t.user_attrs:
            notes.append(f"same parameters as trial {t.user_attrs[DUPLICATE_ATTR]}: not trained")
        row["error"] = "; ".join(n for n in notes if n).replace("\n", " ")
        rows.append(row)
    return rows


def write_tables(rows: List[Dict[str, str]], out_dir: str) -> List[str]:
    """``trials.csv`` and ``trials.md`` under ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    header = list(rows[0]) if rows else ["number", "state", "params", "epochs", "error"]
    csv_path, md_path = os.path.join(out_dir, TABLE_CSV), os.path.join(out_dir, TABLE_MD)
    with open(csv_path + ".tmp", "w", newline="") as fd:
        writer = csv.DictWriter(fd, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(csv_path + ".tmp", csv_path)
    cell = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(r.get(h, "")) for h in header) + " |" for r in rows]
    with open(md_path + ".tmp", "w") as fd:
        fd.write("\n".join(lines) + "\n")
    os.replace(md_path + ".tmp", md_path)
    return [csv_path, md_path]


def write_figures(study: optuna.Study, out_dir: str) -> List[str]:
    """Optimization history and parameter importances as PNG; returns notes (written files, skipped figures)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    notes = []
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if done:
            ax = ovm.plot_optimization_history(study)
            path = os.path.join(out_dir, HISTORY_PNG)
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(ax.figure)
            notes.append(path)
        else:
            notes.append(f"{HISTORY_PNG} skipped: no completed trial")
        varying = {k for t in done for k in t.params if len({json.dumps(u.params.get(k)) for u in done}) > 1}
        if len(done) >= 2 and varying:
            try:
                ax = ovm.plot_param_importances(study)
                path = os.path.join(out_dir, IMPORTANCE_PNG)
                ax.figure.savefig(path, dpi=120, bbox_inches="tight")
                plt.close(ax.figure)
                notes.append(path)
            except (RuntimeError, ValueError) as err:
                notes.append(f"{IMPORTANCE_PNG} skipped: {err}")
        else:
            notes.append(f"{IMPORTANCE_PNG} skipped: needs >= 2 completed trials with varying parameters "
                         f"({len(done)} completed)")
    return notes


def write_report(study: optuna.Study, space: SearchSpace, metrics: Sequence[str], out_dir: str) -> List[str]:
    """Tables and figures; returns the written paths and skip notes."""
    return write_tables(trial_rows(study, space, metrics), out_dir) + write_figures(study, out_dir)
