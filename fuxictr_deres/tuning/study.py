"""Running an Optuna study for one space file: in-process trials, worker processes, resume, budget.

``run_study`` is what ``fuxictr-deres tune`` calls. It creates or loads the study in its storage, recovers trials
left RUNNING by a killed worker (``recovery``), works out how many trials are still owed to ``--trials``, and runs
them: in this process for one job, else in K spawned worker processes that each open the same storage and load
the dataset once (processes, not threads: torch training holds the GIL for Python-side work).
"""

import functools
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

import optuna
import torch

from ..errors import ConfigError
from .distributed_trial import TrialLink
from .objective import TrialObjective
from .progress import StudyProgress
from .recovery import budget_used, recover_interrupted, retry_callback
from .space import SearchSpace, load_base_params, load_space
from .storage import normalize_storage, open_storage

SAMPLERS = ("tpe", "grid", "random")
PRUNERS = ("median", "hyperband", "none")


@dataclass
class StudyOptions:
    """Everything a worker process needs to join the study (plain values, so it pickles for spawn)."""

    space_path: str
    trials: int
    out: str
    storage: Optional[str] = None
    study_name: Optional[str] = None
    n_jobs: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_warmup: int = 0
    tpe_startup: Optional[int] = None               # None: Optuna's default
    seed: int = 2026
    data_root: Optional[str] = None
    gpu: int = -1
    fail_running: bool = False
    progress: bool = True
    command: Optional[str] = None
    nproc: int = 1

    def resolved(self) -> "StudyOptions":
        """A copy with absolute paths, the storage text and the study name filled in."""
        if self.sampler not in SAMPLERS:
            raise ValueError(f"--sampler {self.sampler!r}: expected one of {SAMPLERS}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"--pruner {self.pruner!r}: expected one of {PRUNERS}")
        if self.pruner_warmup < 0 or (self.tpe_startup is not None and self.tpe_startup < 0):
            raise ValueError(f"--pruner-warmup ({self.pruner_warmup}) and --tpe-startup ({self.tpe_startup}) must "
                             f"be >= 0")
        if self.trials < 1 or self.n_jobs < 1 or self.nproc < 1:
            raise ValueError(f"--trials ({self.trials}), --n-jobs ({self.n_jobs}) and --nproc ({self.nproc}) must "
                             f"be >= 1")
        out = os.path.abspath(self.out)
        name = self.study_name or os.path.splitext(os.path.basename(self.space_path))[0]
        return StudyOptions(**{**self.__dict__, "out": out, "study_name": name,
                               "space_path": os.path.abspath(self.space_path),
                               "storage": normalize_storage(self.storage, out)})


def make_sampler(kind: str, space: SearchSpace, seed: int,
                 tpe_startup: Optional[int] = None) -> optuna.samplers.BaseSampler:
    """``tpe_startup``: TPE's random trials before it models the space (None: Optuna's default, 10, which leaves a
    16-trial study only 6 guided trials)."""
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid_search_space(), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = {} if tpe_startup is None else {"n_startup_trials": tpe_startup}
    return optuna.samplers.TPESampler(seed=seed, **startup)


def make_pruner(kind: str, epochs: int, warmup: int = 0) -> optuna.pruners.BasePruner:
    """``warmup``: evaluation rounds the median pruner lets every trial run before it may prune (0 prunes from the
    first round, which favours configurations that start fast, e.g. a high learning rate, over ones that end best)."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(int(epochs), 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def direction_of(params: dict) -> str:
    return "minimize" if params.get("monitor_mode", "max") == "min" else "maximize"


def open_study(opts: StudyOptions, space: SearchSpace, params: dict, worker: int = 0,
               pruner: Optional[optuna.pruners.BasePruner] = None) -> optuna.Study:
    """Create or load the study, with a sampler seeded for this worker and this point of the study.

    TPE's first draws and random search depend on the seed alone, so a resumed study or a second worker with the
    same seed would repeat earlier configurations: the seed is offset by the worker index and by the number of
    trials already in the study (still reproducible: a fresh study with one job uses ``seed`` itself). The grid
    keeps one seed for all (grid ids index one seeded shuffle of the grid).
    """
    study = optuna.create_study(
        study_name=opts.study_name, storage=open_storage(opts.storage, stale_trial_callback=retry_callback),
        pruner=pruner or make_pruner(opts.pruner, params.get("epochs", 1), opts.pruner_warmup),
        direction=direction_of(params), load_if_exists=True)
    existing = len(study.get_trials(deepcopy=False))
    seed = opts.seed if opts.sampler == "grid" else opts.seed + worker + 7919 * existing
    study.sampler = make_sampler(opts.sampler, space, seed, opts.tpe_startup)
    return study


class BudgetCallback:
    """Stop once the shared study has ``trials`` counted or running trials (other machines work on it too)."""

    def __init__(self, trials: int):
        self.trials = trials

    def __call__(self, study: optuna.Study, _trial) -> None:
        used = budget_used(study)
        if used["done"] + used["running"] >= self.trials:
            study.stop()


def _trial_link(opts: StudyOptions, epochs: int, trial: optuna.Trial) -> TrialLink:
    # Optuna has no public id of a live Trial; the storage addresses trials by _trial_id
    return TrialLink(opts.storage, opts.study_name, trial._trial_id, opts.pruner, int(epochs), opts.pruner_warmup)


def make_objective(opts: StudyOptions, space: SearchSpace, params: dict, data) -> TrialObjective:
    """The objective of this worker: trials in this process, or each on ``opts.nproc`` launched processes."""
    return TrialObjective(space, params, data, opts.out, opts.sampler, command=opts.command, nproc=opts.nproc,
                          link=functools.partial(_trial_link, opts, params.get("epochs", 1)))


def _prepare(opts: StudyOptions):
    space = load_space(opts.space_path)
    params = load_base_params(space, data_root=opts.data_root)
    params["gpu"] = opts.gpu
    return space, params


def _optimize(opts: StudyOptions, quota: int, worker: int) -> None:
    from ..runner import load_data
    space, params = _prepare(opts)
    study = open_study(opts, space, params, worker)
    objective = make_objective(opts, space, params, load_data(params))
    study.optimize(objective, n_trials=quota, catch=(Exception,), callbacks=[BudgetCallback(opts.trials)],
                   gc_after_trial=True)


def _worker_main(opts: StudyOptions, quota: int, worker: int) -> None:
    """Entry point of a spawned worker process."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(opts.n_jobs, 1)))
    _optimize(opts, quota, worker)


def split_quota(remaining: int, n_jobs: int) -> List[int]:
    """``remaining`` trials over at most ``n_jobs`` workers, as even as possible."""
    jobs = max(1, min(n_jobs, remaining))
    return [remaining // jobs + (1 if i < remaining % jobs else 0) for i in range(jobs)]


def run_study(options: StudyOptions, pruner: Optional[optuna.pruners.BasePruner] = None) -> optuna.Study:
    """Run (or resume) the study until ``options.trials`` trials are counted; returns the study.

    ``pruner`` replaces the named pruner (in-process runs only: a pruner object does not travel to workers).
    """
    opts = options.resolved()
    from ..runner import load_data
    space, params = _prepare(opts)
    if opts.sampler == "grid" and not space.grid:
        raise ConfigError(f"{space.path}: --sampler grid needs lists in tuner_space (search_space ranges are for "
                          f"tpe/random)")
    os.makedirs(opts.out, exist_ok=True)
    study = open_study(opts, space, params, 0, pruner)
    for note in recover_interrupted(study, all_running=opts.fail_running):
        print(f"[tune] {note}")
    if opts.sampler == "grid" and opts.trials > space.grid_size():
        print(f"[tune] the grid has {space.grid_size()} points: the study stops there (--trials {opts.trials})")
    used = budget_used(study)
    remaining = opts.trials - used["done"] - used["running"]
    if used["running"]:
        print(f"[tune] {used['running']} trial(s) are RUNNING in other processes; they count toward --trials "
              f"(use --fail-running if no other worker is alive)")
    if remaining <= 0:
        print(f"[tune] study {opts.study_name!r} already has {used['done']} counted trial(s) "
              f"(--trials {opts.trials}): nothing to run")
        return study
    progress = StudyProgress(opts.trials, opts.study_name, disable=not opts.progress)
    progress.refresh(study)
    try:
        if opts.n_jobs == 1:
            data = load_data(params)
            if pruner is not None and opts.nproc > 1:
                raise ValueError("a pruner object cannot be sent to launched processes; use --pruner NAME")
            objective = make_objective(opts, space, params, data)
            study.optimize(objective, n_trials=remaining, catch=(Exception,), gc_after_trial=True,
                           callbacks=[BudgetCallback(opts.trials), progress.refresh])
        else:
            if pruner is not None:
                raise ValueError("a pruner object cannot be sent to worker processes; use --pruner NAME")
            load_data(params)                        # prepare the dataset once, before the workers read it
            _run_workers(opts, split_quota(remaining, opts.n_jobs), study, progress)
    finally:
        progress.refresh(study)
        progress.close()
    return optuna.load_study(study_name=opts.study_name, storage=open_storage(opts.storage))


def _stop_on_sigterm():
    """Make SIGTERM (``kill``) stop this process through ``SystemExit``, so its workers are terminated with it
    instead of training on as orphans; returns the function that restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def exit_on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on_term)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _run_workers(opts: StudyOptions, quotas: List[int], study: optuna.Study, progress: StudyProgress) -> None:
    # fresh interpreters: a forked worker deadlocked here (locks held by torch/polars threads at fork time)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(opts, quota, i), name=f"tune-worker-{i}")
             for i, quota in enumerate(quotas)]
    for proc in procs:
        proc.start()
    restore = _stop_on_sigterm()
    try:
        while any(p.is_alive() for p in procs):
            progress.refresh(study)
            time.sleep(1.0)
    except (KeyboardInterrupt, SystemExit):
        for proc in procs:
            proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
        restore()
    dead = [f"{p.name} (pid {p.pid}) exited with {p.exitcode}" for p in procs if p.exitcode != 0]
    notes = recover_interrupted(study)
    if dead:
        raise RuntimeError("worker process(es) failed: " + "; ".join(dead)
                           + ("; " + "; ".join(notes) if notes else "")
                           + ". Re-run the same command to resume the study.")

