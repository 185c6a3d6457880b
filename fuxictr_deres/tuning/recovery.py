"""Trials left behind by a killed worker, and how trials count toward ``--trials``.

Each trial records its worker (host, pid, process start time) first thing. When a study is (re)started, a RUNNING
trial whose worker was on this host and no longer exists is marked FAIL with an ``interrupted`` note and retried
once with the same parameters; a trial that was already a retry is failed for good (``error``), so a
configuration that kills its worker (out of memory) cannot loop. Counted toward the budget: COMPLETE, PRUNED and
FAIL trials with an ``error`` (the trial's own exception); interrupted trials are not counted, their retry is.
"""

import os
import socket
from typing import Any, Dict, List, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

WORKER_ATTR = "worker"
ERROR_ATTR = "error"
INTERRUPTED_ATTR = "interrupted"
RETRY_ATTR = "retry_of"
DUPLICATE_ATTR = "duplicate_of"          # set by the objective on a trial answered from an earlier one


def _start_ticks(pid: int) -> Optional[int]:
    """The process start time in clock ticks (field 22 of /proc/PID/stat), None where /proc is absent."""
    try:
        with open(f"/proc/{pid}/stat", "r") as fd:
            return int(fd.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def worker_identity() -> Dict[str, Any]:
    """This process: host, pid and start time (the pair survives pid reuse)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_ticks(os.getpid())}


def worker_is_dead(worker: Optional[dict]) -> bool:
    """True only when the worker was on this host and its process is gone (or its pid now names another)."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return False
    pid = int(worker.get("pid", -1))
    if pid <= 0:
        return False
    if os.path.isdir("/proc"):
        ticks = _start_ticks(pid)
        return ticks is None or (worker.get("start") is not None and ticks != worker["start"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished trials that used a slot of ``--trials`` (see the module docstring)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and ERROR_ATTR in trial.user_attrs


def budget_used(study: optuna.Study) -> Dict[str, int]:
    """Counted finished trials, RUNNING ones (someone is on them) and WAITING ones (enqueued retries)."""
    trials = study.get_trials(deepcopy=False)
    return {"done": sum(counts_toward_budget(t) for t in trials),
            "running": sum(t.state == TrialState.RUNNING for t in trials),
            "waiting": sum(t.state == TrialState.WAITING for t in trials)}


def _retry_once(study: optuna.Study, trial: FrozenTrial, retried: set) -> str:
    if trial.number in retried:
        return "already retried"
    if RETRY_ATTR in trial.user_attrs:
        return "a retry itself: not retried again"
    study.enqueue_trial(trial.params, user_attrs={RETRY_ATTR: trial.number})
    return "retried"


def recover_interrupted(study: optuna.Study, all_running: bool = False) -> List[str]:
    """Fail the RUNNING trials of dead local workers (or every RUNNING one with ``all_running``), retry once.

    Returns one line per handled trial. Also retries FAIL trials marked interrupted (Ctrl-C, a dead worker seen by
    the heartbeat) that have no retry yet.
    """
    storage, notes = study._storage, []
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_ATTR] for t in trials if RETRY_ATTR in t.user_attrs}
    for trial in trials:
        worker = trial.user_attrs.get(WORKER_ATTR)
        if trial.state == TrialState.RUNNING and (all_running or worker_is_dead(worker)):
            who = f"pid {worker.get('pid')} on {worker.get('host')}" if isinstance(worker, dict) else "its worker"
            is_retry = RETRY_ATTR in trial.user_attrs
            message = (f"{who} stopped before the trial finished (killed or crashed)"
                       + ("; it was already a retry, so it counts as failed (out of memory?)" if is_retry else ""))
            try:
                storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR if is_retry else INTERRUPTED_ATTR, message)
                storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue                          # its worker or another process finished it meanwhile
            notes.append(f"trial {trial.number}: {message}; "
                         f"{'not retried' if is_retry else _retry_once(study, trial, retried)}")
        elif (trial.state == TrialState.FAIL and ERROR_ATTR not in trial.user_attrs
              and trial.number not in retried and RETRY_ATTR not in trial.user_attrs):
            # interrupted (Ctrl-C) or failed by the RDB heartbeat: run its parameters again
            notes.append(f"trial {trial.number}: interrupted earlier; "
                         f"{_retry_once(study, trial, retried)}")
    return notes


def retry_callback(study: optuna.Study, trial: FrozenTrial) -> None:
    """RDB heartbeat's ``failed_trial_callback``: a stale trial (its worker died on some machine) is retried once."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_ATTR] for t in trials if RETRY_ATTR in t.user_attrs}
    _retry_once(study, trial, retried)
