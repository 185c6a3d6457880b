"""Training-step time of one expid in this checkout against the same expid in another checkout, in one process.

    git worktree add --detach OLD_CHECKOUT 2011b24
    python scripts/speed_vs_revision.py --old OLD_CHECKOUT --expid OneTrans_criteo --set num_layers=8 --batch-size 4096

The other checkout's ``fuxictr_deres`` is imported under the alias ``fuxictr_deres_old`` (its imports are relative),
both models are built with the same seed and synthetic batch, and their steps alternate (``speed.step_time_ratio``);
printed: the median new/old step-time ratio and each side's samples/s.
"""

import argparse
import importlib
import os
import sys
import tempfile

import torch


def import_alias(checkout: str, alias: str = "fuxictr_deres_old"):
    """The package ``fuxictr_deres`` of ``checkout`` imported as ``alias``."""
    link_dir = tempfile.mkdtemp(prefix="old_pkg_")
    os.symlink(os.path.join(os.path.abspath(checkout), "fuxictr_deres"), os.path.join(link_dir, alias))
    sys.path.insert(0, link_dir)
    return importlib.import_module(alias)


def setup(package: str, config: str, expid: str, overrides: dict, batch_size: int):
    synthetic = importlib.import_module(f"{package}.bench.synthetic")
    params = synthetic.expid_params(config, expid, overrides)
    fm, _ = synthetic.feature_map_for(params, synthetic=True)
    model = synthetic.build_for_measurement(params, fm)
    return model, synthetic.synthetic_batch(fm, batch_size, seed=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout (a git worktree of the old revision)")
    parser.add_argument("--config", default="benchmark_configs")
    parser.add_argument("--expid", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fuxictr_deres.config import parse_overrides
    from fuxictr_deres.speed import step_time_ratio, train_step
    overrides = parse_overrides(args.set)
    import_alias(args.old)
    new_model, batch = setup("fuxictr_deres", args.config, args.expid, overrides, args.batch_size)
    old_model, _ = setup("fuxictr_deres_old", os.path.join(args.old, "benchmark_configs"), args.expid, overrides,
                         args.batch_size)
    res = step_time_ratio(train_step(new_model, batch), train_step(old_model, batch), args.pairs, args.warmup)
    print(f"{args.expid} {' '.join(args.set)} batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{args.pairs} interleaved pairs")
    print(f"new: step {res['time_a'] * 1e3:.1f} ms, {args.batch_size / res['time_a']:,.0f} samples/s")
    print(f"old ({args.old}): step {res['time_b'] * 1e3:.1f} ms, {args.batch_size / res['time_b']:,.0f} samples/s")
    print(f"step time new / old: median {res['ratio']:.3f} (speed-up {1 / res['ratio']:.2f}x; per pair "
          f"{', '.join(f'{r:.3f}' for r in res['ratios'])})")


if __name__ == "__main__":
    main()
