"""Everything a finished (or resumed) study leaves in ``<out>/``: tables, figures and the exported best expid."""

from typing import List

import optuna

from .export import best_trial, export_trial
from .report import write_report
from .space import load_base_params, load_space
from .study import StudyOptions


def write_outputs(study: optuna.Study, options: StudyOptions) -> List[str]:
    """Write the trials table, figures and (when a trial completed) the tuned expid; returns lines to print."""
    opts = options.resolved()
    space = load_space(opts.space_path)
    params = load_base_params(space, data_root=opts.data_root, check=False)
    lines = write_report(study, space, params.get("metrics", ["logloss", "AUC"]), opts.out)
    best = best_trial(study)
    if best is None:
        lines.append("no completed trial: nothing to export")
        return lines
    expid, path = export_trial(best, space, params, opts.out, study_name=opts.study_name)
    lines += [path, f"best trial {best.number}: validation {params.get('monitor', 'AUC')} = {best.value:.6f}",
              f"reproduce: python run_expid.py --config {opts.out} --expid {expid}"]
    return lines
