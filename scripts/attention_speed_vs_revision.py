"""Forward + backward time of the attention unit (TokenAttention) alone, this checkout against another, in one process.

    git worktree add --detach OLD_CHECKOUT e57288f
    python scripts/attention_speed_vs_revision.py --old OLD_CHECKOUT 1024 8 32

Both units get the same seed and the same token-major (B, T, d) input; new and old alternate
(``speed.step_time_ratio``). Printed: medians and the new/old ratio.
"""

import argparse
import importlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed_vs_revision import import_alias  # noqa: E402


def attention_step(package: str, batch: int, tokens: int, d_model: int, heads: int, causal: bool):
    unit_class = importlib.import_module(f"{package}.layers.attention").TokenAttention
    torch.manual_seed(0)
    unit = unit_class(tokens, d_model, heads, causal=causal)
    h = torch.randn(tokens, batch, d_model).transpose(0, 1).requires_grad_()

    def step():
        unit(h).sum().backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout (a git worktree of the old revision)")
    parser.add_argument("shape", nargs=3, type=int, metavar=("B", "T", "D"))
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--pairs", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fuxictr_deres.speed import step_time_ratio
    import_alias(args.old)
    new = attention_step("fuxictr_deres", *args.shape, args.heads, args.causal)
    old = attention_step("fuxictr_deres_old", *args.shape, args.heads, args.causal)
    res = step_time_ratio(new, old, args.pairs, 3)
    print(f"TokenAttention B T d = {' '.join(map(str, args.shape))}, {args.heads} heads, causal={args.causal}, "
          f"{args.threads} threads, {args.pairs} pairs")
    print(f"new {res['time_a'] * 1e3:.2f} ms, old {res['time_b'] * 1e3:.2f} ms; new / old: median {res['ratio']:.3f}")


if __name__ == "__main__":
    main()
