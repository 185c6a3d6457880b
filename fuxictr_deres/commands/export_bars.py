"""``fuxictr-deres export-bars``: BARS result folders (ranking/ctr/<Model>/<Model>_<dataset>/) from a results store."""

import argparse

HELP = "write BARS folders ranking/ctr/<Model>/<Model>_<dataset>/ (log, results.csv, config, environments.txt)"
EXAMPLE = "fuxictr-deres export-bars --results results/bench_demo --out bars"


def execute(args: argparse.Namespace) -> int:
    from ..zoo.bars import export_bars
    for folder in export_bars(args.results, args.out):
        print(f"wrote {folder}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("export-bars", help=HELP, description=HELP)
    parser.add_argument("--results", required=True,
                        help="a results store: a bench/scaling --out folder or a run's model_root (results.jsonl)")
    parser.add_argument("--out", required=True, help="output root; folders go to <out>/ranking/ctr/")
    parser.set_defaults(func=execute)
