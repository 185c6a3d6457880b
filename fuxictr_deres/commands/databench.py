"""``fuxictr-deres databench``: throughput and peak memory of the data path against FuxiCTR's own."""

import argparse

HELP = "benchmark data preparation and loading against FuxiCTR's Ray build and parquet loader"
EXAMPLE = "fuxictr-deres databench --rows 100000 --workdir databench_work"
TASKS = ("fuxictr_build", "prepare", "ours_loader", "fuxictr_loader")


def execute(args: argparse.Namespace) -> int:
    from ..data.databench import run
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"--tasks: unknown {unknown} (choose from {', '.join(TASKS)})")
    results = run(args.rows, args.workdir, tasks, batch_size=args.batch_size, raw=args.raw)
    by = {r["task"]: r for r in results}
    if "fuxictr_build" in by and "prepare" in by:
        print(f"prepare vs FuxiCTR build: {by['prepare']['rows_per_s'] / by['fuxictr_build']['rows_per_s']:.1f}x "
              f"rows/s; peak PSS {by['prepare']['peak_pss_mb']:.0f} MB vs {by['fuxictr_build']['peak_pss_mb']:.0f} MB")
    if "ours_loader" in by and "fuxictr_loader" in by:
        print(f"loader vs FuxiCTR parquet loader: "
              f"{by['ours_loader']['rows_per_s'] / by['fuxictr_loader']['rows_per_s']:.1f}x rows/s")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("databench", help=HELP, description=HELP + ". Each task runs in a fresh "
                                   "subprocess; peak memory is the PSS of its whole process tree.")
    parser.add_argument("--rows", type=int, default=1000000, help="synthetic raw Criteo rows (default 1M)")
    parser.add_argument("--workdir", required=True, help="scratch folder (raw file, built datasets); delete after")
    parser.add_argument("--raw", default=None, help="use this raw Criteo file instead of generating one")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    parser.add_argument("--batch_size", type=int, default=4096, help="loader batch size (default 4096)")
    parser.set_defaults(func=execute)
