"""One Optuna trial trained data-parallel on N processes (``tune --nproc N``).

The tune worker keeps the trial (it samples the hyperparameters and records the outcome, as for an in-process
trial) and launches the training on N fresh processes (``distributed.launch``). Rank 0 opens the same storage,
takes the RUNNING trial by id and reports each validation round to it; the prune decision is broadcast, so every
rank stops at the same round. Each trial is its own process group: a rank that fails ends that trial only (the
worker records it as FAIL, with the rank's error) and the study goes on.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

import optuna
from fuxictr.utils import Monitor


@dataclass(frozen=True)
class TrialLink:
    """What rank 0 needs to reach the running trial (plain values: sent to spawned processes)."""

    storage: str
    study_name: str
    trial_id: int
    pruner: str
    epochs: int
    pruner_warmup: int = 0


def report_and_prune(trial, monitor: Monitor, counter, round_index: int, logs: Dict[str, float], model) -> None:
    """Report one evaluation round to ``trial``; raise ``TrialPruned`` when its pruner says so."""
    counter.update(model)
    value = monitor.get_value(logs)
    trial.set_user_attr("epochs", counter.epochs)
    trial.report(value, round_index)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned after evaluation round {round_index + 1} "
                                 f"(epoch {counter.epochs:g}): validation {value:.6f}")


def _open_trial(link: TrialLink) -> optuna.Trial:
    from .storage import open_storage
    from .study import make_pruner
    pruner = make_pruner(link.pruner, link.epochs, link.pruner_warmup)
    study = optuna.load_study(study_name=link.study_name, storage=open_storage(link.storage),
                              sampler=optuna.samplers.RandomSampler(), pruner=pruner)
    return optuna.trial.Trial(study, link.trial_id)


def train_trial_on_rank(params: dict, log_path: str, link: TrialLink) -> Optional[Dict[str, Any]]:
    """Entry point of each launched rank. Rank 0 returns ``{"record" | "pruned", "epochs"}``; the others None."""
    from .. import distributed
    from ..distributed.process_group import broadcast_object
    from ..runner import load_data, train_and_evaluate
    from .objective import EpochCounter, log_to_file
    ctx = distributed.init(params.get("gpu", -1))
    try:
        distributed.quiet_other_ranks(ctx)
        params = distributed.params_for_rank(params, ctx)
        trial = _open_trial(link) if ctx.is_main else None
        monitor, counter = Monitor(params.get("monitor", "AUC")), EpochCounter()

        def on_eval(round_index: int, logs: Dict[str, float], model) -> None:
            decision = None
            if ctx.is_main:
                try:
                    report_and_prune(trial, monitor, counter, round_index, logs, model)
                except optuna.TrialPruned as pruned:
                    decision = str(pruned)
            else:
                counter.update(model)
            decision = broadcast_object(decision, ctx)
            if decision is not None:
                raise optuna.TrialPruned(decision)

        outcome: Dict[str, Any] = {}
        try:
            if ctx.is_main:
                with log_to_file(log_path):
                    outcome["record"] = train_and_evaluate(params, load_data(params), on_eval=on_eval)
            else:
                train_and_evaluate(params, load_data(params), on_eval=on_eval)
        except optuna.TrialPruned as pruned:
            outcome["pruned"] = str(pruned)
        outcome["epochs"] = counter.epochs
        return outcome if ctx.is_main else None
    finally:
        distributed.shutdown()
