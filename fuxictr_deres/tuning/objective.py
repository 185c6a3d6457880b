"""One Optuna trial = one in-process FuxiCTR training on data loaded once per study.

The validation metric of every FuxiCTR evaluation round is reported to Optuna from the runner's ``on_eval`` hook,
after FuxiCTR's own checkpoint, early-stopping and lr-decay logic ran; a pruned trial raises ``TrialPruned`` out of
``fit``. Errors (a constructor refusing a combination, a NaN loss) are stored on the trial as ``error`` and
re-raised so Optuna records it as FAIL; the study goes on.

A trial whose parameters repeat a finished trial's is not trained again: every trial trains from the same base
config and seed, so the run would repeat bit for bit on CPU. TPE over categorical choices proposes repeats often
(optuna/optuna#2021); a repeat of a completed trial returns its value, a repeat of a pruned trial is pruned, both
at 0 epochs, with ``duplicate_of`` naming the earlier trial.
"""

import contextlib
import logging
import math
import os
import shlex
import sys
from typing import Any, Callable, Dict, Optional

import optuna
from fuxictr.utils import Monitor

from ..config import apply_overrides
from ..distributed.launch import run_on_processes
from ..results import jsonable, write_result
from ..runner import ExperimentData, new_run_dir, train_and_evaluate
from .distributed_trial import TrialLink, report_and_prune, train_trial_on_rank
from .recovery import DUPLICATE_ATTR, ERROR_ATTR, INTERRUPTED_ATTR, WORKER_ATTR, worker_identity
from .space import SearchSpace

#: per-trial bookkeeping keys of the stored config; the export leaves them out
RUN_KEYS = ("model_id", "model_root", "data_root", "config_dir", "gpu", "data_loader")


def trial_model_id(base_expid: str, number: int) -> str:
    return f"{base_expid}_trial{number:04d}"


@contextlib.contextmanager
def log_to_file(path: str):
    """Send the root logger (FuxiCTR's training log) to ``path`` only, so the progress bar stays readable."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s P%(process)d %(levelname)s %(message)s"))
    root.handlers, root.level = [handler], logging.INFO
    try:
        yield
    finally:
        handler.close()
        root.handlers, root.level = saved, level


def earlier_same_trial(trial: optuna.Trial) -> Optional[optuna.trial.FrozenTrial]:
    """The first completed or pruned trial of the study with exactly ``trial``'s parameters, if any."""
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for earlier in trial.study.get_trials(deepcopy=False, states=finished):
        if earlier.number != trial.number and earlier.params == trial.params:
            return earlier
    return None


class EpochCounter:
    """Training epochs spent so far (fractional when evaluation rounds fall inside an epoch)."""

    def __init__(self):
        self.epochs, self.rounds = 0.0, 0

    def update(self, model) -> None:
        self.epochs = model._total_steps / max(model._steps_per_epoch, 1)
        self.rounds += 1


class TrialObjective:
    """Callable for ``study.optimize``: suggest, train, report, store metrics as user attributes."""

    def __init__(self, space: SearchSpace, base_params: dict, data: ExperimentData, out_dir: str,
                 sampler: str, command: Optional[str] = None, keep_checkpoints: bool = False,
                 nproc: int = 1, link: Optional[Callable[[optuna.Trial], TrialLink]] = None):
        """``nproc > 1``: each trial trains data-parallel on that many launched processes; ``link`` gives the
        storage coordinates of a trial, for the rank that reports to it."""
        self.space, self.base_params, self.data, self.sampler = space, base_params, data, sampler
        self.nproc, self.link = int(nproc), link
        if self.nproc > 1 and link is None:
            raise ValueError("a TrialObjective with nproc > 1 needs link (the study's storage and name)")
        self.out_dir = os.path.abspath(out_dir)
        self.command = command or " ".join(shlex.quote(a) for a in sys.argv)
        self.keep_checkpoints = keep_checkpoints
        self.monitor = Monitor(base_params.get("monitor", "AUC"))

    def trial_params(self, trial: optuna.Trial) -> Dict[str, Any]:
        overrides = self.space.suggest(trial, self.sampler)
        params = apply_overrides(self.base_params, overrides)
        params.update(model_id=trial_model_id(self.space.base_expid, trial.number), verbose=0,
                      model_root=os.path.join(self.out_dir, "checkpoints"))
        trial.set_user_attr("overrides", jsonable(overrides))
        return params

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker_identity())
        counter = EpochCounter()
        params: Dict[str, Any] = {}
        run_dir: Optional[str] = None

        def on_eval(round_index: int, logs: Dict[str, float], model) -> None:
            report_and_prune(trial, self.monitor, counter, round_index, logs, model)

        try:
            params = self.trial_params(trial)
            earlier = earlier_same_trial(trial)
            if earlier is not None:
                return self._answer_from(trial, earlier)
            log_path = os.path.join(self.out_dir, "logs", params["model_id"] + ".log")
            if self.nproc > 1:                    # rank 0 of the launched group makes the run directory
                outcome = run_on_processes(self.nproc, train_trial_on_rank, params, log_path, self.link(trial))
                counter.epochs = outcome["epochs"]
                if "pruned" in outcome:
                    raise optuna.TrialPruned(outcome["pruned"])
                record = outcome["record"]
                run_dir = record.get("run_dir")
            else:
                run_dir = new_run_dir(params)
                with log_to_file(log_path):
                    record = train_and_evaluate(params, self.data, on_eval=on_eval, run_dir=run_dir)
            value = self.monitor.get_value(record["valid"])
            if not math.isfinite(value):
                raise FloatingPointError(f"validation {self.base_params.get('monitor')} is {value}")
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED_ATTR, "interrupted (Ctrl-C) before the trial finished")
            raise
        except Exception as err:
            trial.set_user_attr(ERROR_ATTR, f"{type(err).__name__}: {err}")
            raise
        finally:
            trial.set_user_attr("epochs", counter.epochs)
            self._drop_checkpoint(params, run_dir)
        for split in ("valid", "test"):
            for name, metric in record[split].items():
                trial.set_user_attr(f"{split}_{name}", float(metric))
        trial.set_user_attr("epochs", counter.epochs)
        trial.set_user_attr("best_epoch", record["best_epoch"])
        trial.set_user_attr("num_params", record["num_params"])
        trial.set_user_attr("fit_seconds", record["fit_seconds"])
        trial.set_user_attr("model_id", params["model_id"])
        record["trial"] = trial.number
        write_result(self.out_dir, record, self.command)
        return value

    @staticmethod
    def _answer_from(trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> float:
        trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
        if earlier.state == optuna.trial.TrialState.PRUNED:
            raise optuna.TrialPruned(f"the same parameters as trial {earlier.number}, which was pruned")
        for key, value in earlier.user_attrs.items():
            if key.startswith(("valid_", "test_")) or key in ("best_epoch", "num_params"):
                trial.set_user_attr(key, value)
        return earlier.value

    def _drop_checkpoint(self, params: dict, run_dir: Optional[str]) -> None:
        # a study of hundreds of trials would otherwise keep hundreds of model files; the export retrains the best
        if self.keep_checkpoints or run_dir is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(run_dir, params["model_id"] + ".model"))
        with contextlib.suppress(OSError):
            os.rmdir(run_dir)
