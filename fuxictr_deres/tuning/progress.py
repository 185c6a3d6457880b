"""A tqdm bar over a study's budget, showing the best validation value so far (read from the storage)."""

from typing import Optional

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from .recovery import budget_used


class StudyProgress:
    """``refresh(study)`` after each trial (in-process) or on a timer (while worker processes run)."""

    def __init__(self, total: int, desc: str, disable: bool = False):
        self.bar = tqdm(total=total, desc=desc, unit="trial", disable=disable, dynamic_ncols=True)

    def refresh(self, study: optuna.Study, *_args) -> None:
        used = budget_used(study)
        self.bar.n = min(used["done"], self.bar.total)
        best = best_value(study)
        self.bar.set_postfix_str(f"best={best:.6f}" if best is not None else "best=n/a", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def best_value(study: optuna.Study) -> Optional[float]:
    """The best COMPLETE value, None before the first one."""
    done = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not done:
        return None
    return max(done) if study.direction == optuna.study.StudyDirection.MAXIMIZE else min(done)
