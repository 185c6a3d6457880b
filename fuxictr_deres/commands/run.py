"""``fuxictr-deres run`` (and the repository's ``run_expid.py``): train and evaluate one expid."""

import argparse
import os
from typing import List, Optional

HELP = "train and evaluate one expid (FuxiCTR's run_expid.py)"
EPILOG = """several processes (DDP; batch_size stays the global batch, split over the processes):
  torchrun --standalone --nproc_per_node 2 run_expid.py --config benchmark_configs --expid DeRes_demo
  torchrun --standalone --nproc_per_node 4 -m fuxictr_deres.cli run --config ... --expid ... --gpu 0
(gloo on CPU; with --gpu, nccl and one GPU per process, GPU = LOCAL_RANK). See README, "Several processes or GPUs"."""
EXAMPLE = "fuxictr-deres run --config benchmark_configs --expid DeRes_demo --seed 1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--expid", required=True, help="experiment id, e.g. DeRes_criteo")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU (default)")
    parser.add_argument("--data_root", default=None,
                        help="root of the prepared datasets (default: the config's data_root, "
                             "or $FUXICTR_DERES_DATA_ROOT)")
    parser.add_argument("--prepared_root", default=None,
                        help="where the prepared dataset is (written when missing; default: data_root, the config's "
                             "prepared_root or $FUXICTR_DERES_PREPARED_ROOT)")
    parser.add_argument("--model_root", default=None,
                        help="where results.csv/jsonl go, and each run's own directory "
                             "<model_root>/<dataset_id>/<expid>/seed<S>-<run id>/ with its checkpoint and log "
                             "(default: the config's model_root)")
    parser.add_argument("--seed", type=int, default=None, help="override the expid's seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyperparameter (repeatable; dotted keys reach inside mappings, "
                             "e.g. --set num_layers=8 --set residual_params.num_blocks=4)")


def execute(args: argparse.Namespace) -> int:
    from ..config import parse_overrides
    from ..results import run_report
    from ..runner import run_expid
    overrides = parse_overrides(args.overrides)
    if args.seed is not None:
        overrides["seed"] = args.seed
    record = run_expid(args.config, args.expid, gpu=args.gpu, data_root=args.data_root,
                       model_root=args.model_root, overrides=overrides, prepared_root=args.prepared_root)
    if os.environ.get("RANK", "0") != "0":                     # under torchrun: rank 0 reports
        return 0
    print(run_report(record))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help=HELP, description=HELP, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=execute)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of run_expid.py: the same arguments as ``fuxictr-deres run``."""
    from torch.distributed.elastic.multiprocessing.errors import record

    from ..cli import run_command
    parser = argparse.ArgumentParser(prog="run_expid.py", description=HELP, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    # under torchrun, an error that escapes is written to the agent's error file (its summary names the rank)
    return record(run_command)(execute, parser.parse_args(argv))
