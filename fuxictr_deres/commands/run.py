"""``fuxictr-deres run`` (and the repository's ``run_expid.py``): train and evaluate one expid."""

import argparse
from typing import List, Optional

HELP = "train and evaluate one expid (FuxiCTR's run_expid.py)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--expid", required=True, help="experiment id, e.g. DeRes_criteo")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU (default)")
    parser.add_argument("--data_root", default=None,
                        help="root of the prepared datasets (default: the config's data_root, "
                             "or $FUXICTR_DERES_DATA_ROOT)")
    parser.add_argument("--model_root", default=None,
                        help="where checkpoints, logs and results.csv/jsonl go (default: the config's model_root)")
    parser.add_argument("--seed", type=int, default=None, help="override the expid's seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyperparameter (repeatable; dotted keys reach inside mappings, "
                             "e.g. --set num_layers=8 --set residual_params.num_blocks=4)")


def execute(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..runner import run_expid
    overrides = parse_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = args.seed
    record = run_expid(args.config, args.expid, gpu=args.gpu, data_root=args.data_root,
                       model_root=args.model_root, overrides=overrides)
    print(f"{record['expid']}: valid {record['valid']}  test {record['test']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help=HELP, description=HELP)
    add_arguments(parser)
    parser.set_defaults(func=execute)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of run_expid.py: the same arguments as ``fuxictr-deres run``."""
    from ..cli import run_command
    parser = argparse.ArgumentParser(prog="run_expid.py", description=HELP)
    add_arguments(parser)
    return run_command(execute, parser.parse_args(argv))
