"""Forward + backward time of one residual rule alone, this checkout against another, in one process.

    git worktree add --detach OLD_CHECKOUT e57288f
    python scripts/rule_speed_vs_revision.py --old OLD_CHECKOUT --rule deres 1024 8 32 4

The rule runs over 2L units that are a single elementwise multiply (so the rule's own work dominates) on a
token-major (B, T, d) input, as the backbone stores its states; new and old alternate (``speed.step_time_ratio``).
A Pre-Norm rule of this checkout is timed alongside as the floor. Printed: medians and the new/old ratio.
"""

import argparse
import importlib
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed_vs_revision import import_alias  # noqa: E402


class ScaleUnit(nn.Module):
    """h * w: a unit with a parameter and almost no work of its own."""

    def __init__(self, d_model: int):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.w


def rule_step(package: str, rule: str, batch: int, tokens: int, d_model: int, layers: int):
    build = importlib.import_module(f"{package}.residuals").build_residual_rule
    torch.manual_seed(0)
    residual = build(rule, {}, 2 * layers, d_model, tokens, 2)
    units = [ScaleUnit(d_model) for _ in range(2 * layers)]
    x = torch.randn(tokens, batch, d_model).transpose(0, 1).requires_grad_()

    def step():
        residual.run(x, units).sum().backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the other checkout (a git worktree of the old revision)")
    parser.add_argument("--rule", default="deres")
    parser.add_argument("shape", nargs=4, type=int, metavar=("B", "T", "D", "L"))
    parser.add_argument("--pairs", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from fuxictr_deres.speed import step_time_ratio
    import_alias(args.old)
    new = rule_step("fuxictr_deres", args.rule, *args.shape)
    old = rule_step("fuxictr_deres_old", args.rule, *args.shape)
    floor = step_time_ratio(rule_step("fuxictr_deres", "prenorm", *args.shape), new, args.pairs, 2)
    res = step_time_ratio(new, old, args.pairs, 2)
    print(f"rule {args.rule}, B T d L = {' '.join(map(str, args.shape))}, {args.threads} threads, {args.pairs} pairs")
    print(f"prenorm {floor['time_a'] * 1e3:.2f} ms, new {res['time_a'] * 1e3:.2f} ms, old {res['time_b'] * 1e3:.2f} ms")
    print(f"new / old: median {res['ratio']:.3f} (per pair {', '.join(f'{r:.3f}' for r in res['ratios'])})")


if __name__ == "__main__":
    main()
