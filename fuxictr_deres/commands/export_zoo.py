"""``fuxictr-deres export-zoo``: write model_zoo/<Model>/ folders (FuxiCTR's zoo layout) generated from this package."""

import argparse
import os

HELP = "write model_zoo/<Model>/ (README, configs, tiny sample, run_expid.py, src/) for FuxiCTR's zoo"
EXAMPLE = "fuxictr-deres export-zoo --out model_zoo          # --check: only report drift (exit 1)"


def _repo_path(name: str) -> str:
    here = name if os.path.isdir(name) else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", name)
    return os.path.normpath(here)


def execute(args: argparse.Namespace) -> int:
    from ..zoo.catalog import MODELS
    from ..zoo.folder import export_zoo
    models = args.models.split(",") if args.models else list(MODELS)
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"--models: unknown zoo model(s) {unknown}; expected some of {', '.join(MODELS)}")
    config = args.config or _repo_path("benchmark_configs")
    results = args.results if args.results is not None else _repo_path(os.path.join("docs", "results"))
    report = export_zoo(args.out, models, config, results or None, check=args.check)
    drifted = 0
    for name, changes in report:
        folder = os.path.join(args.out, name)
        if args.check:
            state = "up to date" if not changes else f"{len(changes)} difference(s): " + "; ".join(changes[:8])
            print(f"{folder}: {state}")
        else:
            print(f"{folder}: written" + (f" ({len(changes)} file(s) changed)" if changes else " (unchanged)"))
        drifted += bool(changes)
    if args.check and drifted:
        print(f"{drifted} folder(s) differ from what the package generates: run `fuxictr-deres export-zoo "
              f"--out {args.out}` and commit the result")
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("export-zoo", help=HELP, description=HELP)
    parser.add_argument("--out", default="model_zoo", help="output folder (default model_zoo)")
    parser.add_argument("--models", default=None, help="comma-separated subset (default: all seven)")
    parser.add_argument("--config", default=None,
                        help="config directory the _test/_default expids come from (default benchmark_configs)")
    parser.add_argument("--results", default=None,
                        help="folder of committed bench summaries for the READMEs (default docs/results; '' for none)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a folder differs")
    parser.set_defaults(func=execute)
