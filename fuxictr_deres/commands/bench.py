"""``fuxictr-deres bench``: models x datasets x seeds through the runner, resumable, with a summary (mean +- std,
seed-paired AUC difference to a reference with a seeds+rows bootstrap interval, params, FLOPs, speed, memory) as
CSV, JSON, Markdown and a figure."""

import argparse

HELP = "benchmark expids <Model>_<dataset> over seeds (resumable) and summarise against a reference model"
EXAMPLE = "fuxictr-deres bench --config benchmark_configs --models DeRes,OneTrans --datasets demo --seeds 1,2 --out results/bench_demo"


def _list(text: str):
    return [v.strip() for v in text.split(",") if v.strip()]


def execute(args: argparse.Namespace) -> int:
    from ..bench.harness import added_text, plan, run_bench
    from ..bench.store import DataRoots
    from ..bench.summary import summary_reference, write_summary
    from ..config import parse_overrides
    if not args.summary_only:
        if not (args.config and args.models and args.datasets):
            raise ValueError("bench needs --config, --models and --datasets (or --summary-only)")
        specs = plan(_list(args.models), _list(args.datasets), [int(s) for s in _list(args.seeds)],
                     parse_overrides(args.set))
        added = run_bench(args.config, specs, args.out, data_root=args.data_root, verbose=args.verbose,
                          reuse=args.reuse or (), nproc=args.nproc, gpu=args.gpu,
                          prepared_root=args.prepared_root)
        print(f"{added_text(added)}, {len(specs) - len(added)} already in {args.out}/results.jsonl "
              f"(or trained by another worker on this folder)")
    if args.routing_removal:
        from ..bench.routing import add_routing_removal
        for line in add_routing_removal(args.out, DataRoots(args.config, args.data_root, args.prepared_root)):
            print(line)
    # a regenerated summary keeps the reference it was made against, unless --reference names another
    reference = args.reference or summary_reference(args.out) or "OneTrans"
    rows = write_summary(args.out, reference, args.bootstrap,
                         DataRoots(args.config, args.data_root, args.prepared_root))
    with open(f"{args.out}/summary.md") as fd:
        print(fd.read(), end="")
    print(f"wrote {args.out}/summary.csv, summary.json, summary.md" + (", auc_vs_flops.png" if rows else ""))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help=HELP, description=HELP)
    parser.add_argument("--config", help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--models", help="comma-separated model names: expids are <Model>_<dataset>")
    parser.add_argument("--datasets", help="comma-separated dataset ids, e.g. frappe,criteo")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument("--reference", default=None,
                        help="model the paired AUC differences are taken against (default: the one of the folder's "
                             "summary.json, else OneTrans)")
    parser.add_argument("--out", required=True, help="output folder: results.jsonl, predictions/, summary.*")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a parameter of every run (value read as YAML), e.g. --set epochs=1")
    parser.add_argument("--data_root", default=None, help="root of the dataset source files")
    parser.add_argument("--prepared_root", default=None, help="root of the prepared datasets (default: data_root)")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU (default)")
    parser.add_argument("--reuse", action="append", metavar="FOLDER",
                        help="an output folder whose runs with an identical training config are copied instead of "
                             "trained (repeatable)")
    parser.add_argument("--nproc", type=int, default=1,
                        help="train each run data-parallel on N processes (torch DDP; batch_size is the global "
                             "batch; default 1: in this process)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--summary-only", action="store_true",
                        help="only (re)write the summary of --out (a cloned results store: with --config and "
                             "--data_root/--prepared_root, its test labels are rebuilt from the dataset)")
    parser.add_argument("--routing-removal", action="store_true",
                        help="first measure the test-AUC change of removing the routing for the runs of --out "
                             "recorded without it (their checkpoints must be on this machine; needs --config and "
                             "the data)")
    parser.add_argument("--verbose", action="store_true", help="FuxiCTR's per-batch progress bars in the log")
    parser.set_defaults(func=execute)
