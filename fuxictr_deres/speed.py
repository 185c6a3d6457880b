"""Training-step speed on a shared machine (specs/measurement.md): absolute times drift, so two models are compared
as a ratio measured in one process, alternating their steps (which model goes first alternates too), after a
warm-up; the figure is the median of the per-pair ratios t_A / t_B.

The reference for "how close to the limit" is the machine's own dense matmul throughput at the model's shapes:
P = 2 (B T) d (k d) / t for one (B T, d) @ (d, k d) product (k = the FFN ratio), and a model achieves
3 x forward FLOPs/sample x B / t_step (a training step is about forward + twice the forward for backward).
"""

import statistics
import time
from typing import Callable, Dict, List

import torch


def train_step(model, batch: dict) -> Callable[[], float]:
    """One FuxiCTR training step (forward, loss, backward, clipping, optimizer step) on ``batch``, as a callable."""
    model._max_gradient_norm = getattr(model, "_max_gradient_norm", 10.0)   # set by fit() in FuxiCTR
    model._batch_index = getattr(model, "_batch_index", 0)                 # set by train_epoch (DCNv2 reads it)
    model.train()

    def step() -> float:
        return float(model.train_step(batch).detach())
    return step


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_time_ratio(step_a: Callable[[], object], step_b: Callable[[], object], pairs: int = 7,
                    warmup: int = 2) -> Dict[str, object]:
    """Median over ``pairs`` of t_A / t_B, each pair timed back to back, order alternating; medians of t_A, t_B."""
    for _ in range(warmup):
        step_a()
        step_b()
    times_a: List[float] = []
    times_b: List[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            times_a.append(_timed(step_a))
            times_b.append(_timed(step_b))
        else:
            times_b.append(_timed(step_b))
            times_a.append(_timed(step_a))
    ratios = [a / b for a, b in zip(times_a, times_b)]
    return {"ratio": statistics.median(ratios), "ratios": ratios, "time_a": statistics.median(times_a),
            "time_b": statistics.median(times_b)}


def interleaved_step_times(steps: List[Callable[[], object]], rounds: int = 7, warmup: int = 2) -> Dict[str, list]:
    """Round-robin timing of several steps: each round times every step once, the order rotating by one per round
    (so no step always runs first); returns per-step lists of times and of ratios t_i / t_0 within each round."""
    for _ in range(warmup):
        for step in steps:
            step()
    times: List[List[float]] = [[] for _ in steps]
    for r in range(rounds):
        for k in range(len(steps)):
            i = (k + r) % len(steps)
            times[i].append(_timed(steps[i]))
    ratios = [[t / t0 for t, t0 in zip(ts, times[0])] for ts in times]
    return {"times": times, "ratios": ratios, "median_times": [statistics.median(ts) for ts in times],
            "median_ratios": [statistics.median(rs) for rs in ratios]}


def matmul_throughput(rows: int, d_in: int, d_out: int, repeats: int = 9) -> float:
    """Measured FLOP/s of a dense (rows, d_in) @ (d_in, d_out) float32 product, from the fastest of ``repeats``
    (the limit the machine reaches; a shared machine only ever slows a product down)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, d_in, generator=g)
    w = torch.randn(d_in, d_out, generator=g)
    torch.matmul(x, w)                                               # warm-up
    seconds = min(_timed(lambda: torch.matmul(x, w)) for _ in range(repeats))
    return 2.0 * rows * d_in * d_out / max(seconds, 1e-12)


def achieved_flops(forward_flops_per_sample: float, batch_size: int, step_seconds: float) -> float:
    """Model FLOP/s of a training step: 3 x forward FLOPs x batch / step time."""
    return 3.0 * forward_flops_per_sample * batch_size / max(step_seconds, 1e-12)
