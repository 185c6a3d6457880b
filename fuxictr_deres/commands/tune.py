"""``fuxictr-deres tune``: an Optuna study per model and dataset from a space file under tuning/."""

import argparse

HELP = "tune an expid with Optuna (persisted, resumable, pruned) and export the best trial as an expid"
EXAMPLE = "fuxictr-deres tune --space tuning/DeRes_demo.yaml --trials 4 --out results/tune_demo"

EPILOG = """storage: default sqlite:///<out>/study.db; any SQLAlchemy URL; or journal:PATH (an Optuna journal file,
shared by processes and machines). Re-running the same command resumes the study: completed trials are kept and
count toward --trials; a trial left RUNNING by a killed worker on this host is marked FAIL and retried once.
Outputs in --out: trials.csv/.md, optimization_history.png, param_importances.png, model_config/<expid>_tuned.yaml
and dataset_config.yaml (python run_expid.py --config <out> --expid <expid>_tuned), results.csv/.jsonl."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True, help="search-space yaml, e.g. tuning/DeRes_frappe.yaml")
    parser.add_argument("--trials", type=int, required=True,
                        help="trials the study should have (COMPLETE + PRUNED + FAILED, earlier runs included)")
    parser.add_argument("--storage", default=None, help="SQLAlchemy URL or journal:PATH (default <out>/study.db)")
    parser.add_argument("--study", default=None, help="study name (default: the space file's name)")
    parser.add_argument("--n-jobs", dest="n_jobs", type=int, default=1,
                        help="worker processes, each loading the data once and opening the same storage (default 1)")
    parser.add_argument("--nproc", type=int, default=1,
                        help="train each trial data-parallel on N launched processes (torch DDP; batch_size is "
                             "the global batch; default 1: in the worker)")
    parser.add_argument("--sampler", choices=("tpe", "grid", "random"), default="tpe",
                        help="tpe (default), grid (FuxiCTR's grid over tuner_space lists) or random")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="prune from the per-epoch validation metric (default median)")
    parser.add_argument("--pruner-warmup", dest="pruner_warmup", type=int, default=0,
                        help="evaluation rounds (epochs) every trial runs before the median pruner may prune it "
                             "(default 0: from the first)")
    parser.add_argument("--tpe-startup", dest="tpe_startup", type=int, default=None,
                        help="random trials before TPE models the space (default: Optuna's, 10)")
    parser.add_argument("--seed", type=int, default=2026,
                        help="sampler seed (worker i uses seed + i); the training seed is the expid's `seed`")
    parser.add_argument("--data_root", default=None, help="root of the prepared datasets")
    parser.add_argument("--out", default=None, help="output folder (default results/tuning/<study>)")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU (default)")
    parser.add_argument("--fail-running", dest="fail_running", action="store_true",
                        help="mark every RUNNING trial as interrupted and retry it (when no other worker is alive)")
    parser.add_argument("--compare-grid", dest="compare_grid", action="store_true",
                        help="benchmark: FuxiCTR's grid (no pruning) vs TPE + pruning, --trials each; prints best "
                             "validation and training epochs of both")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def execute(args: argparse.Namespace) -> int:
    import os
    import shlex
    import sys

    import optuna

    from ..tuning.study import StudyOptions
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = args.study or os.path.splitext(os.path.basename(args.space))[0]
    opts = StudyOptions(space_path=args.space, trials=args.trials, out=args.out or os.path.join("results", "tuning",
                        name), storage=args.storage, study_name=name, n_jobs=args.n_jobs, sampler=args.sampler,
                        pruner=args.pruner, pruner_warmup=args.pruner_warmup, tpe_startup=args.tpe_startup,
                        seed=args.seed, data_root=args.data_root, gpu=args.gpu,
                        fail_running=args.fail_running, progress=args.progress, nproc=args.nproc,
                        command=" ".join(["fuxictr-deres"] + [shlex.quote(a) for a in sys.argv[1:]]))
    if args.compare_grid:
        from ..tuning.compare import compare_grid_tpe, format_comparison
        for line in format_comparison(compare_grid_tpe(opts)):
            print(line)
        return 0
    from ..tuning.outputs import write_outputs
    from ..tuning.study import run_study
    study = run_study(opts)
    for line in write_outputs(study, opts):
        print(line)
    return _exit_code(study)


def _exit_code(study) -> int:
    """1 when the study has failed trials and none completed (every configuration broke), else 0."""
    import sys

    from optuna.trial import TrialState

    from ..tuning.recovery import ERROR_ATTR
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if failed and not any(t.state == TrialState.COMPLETE for t in trials):
        print(f"error: all {len(failed)} finished trial(s) failed; first error: "
              f"{failed[0].user_attrs.get(ERROR_ATTR, 'unknown')}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("tune", help=HELP, description=HELP, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=execute)
