"""Paired bootstrap of a test-AUC difference over test rows (specs/measurement.md).

One replicate draws N row indices with replacement, the same for both models, and recomputes
    delta* = mean over matched seeds s of [AUC(y, p_A,s) - AUC(y, p_B,s)]   on the drawn rows;
the interval is the percentile interval of delta*. A draw is a multiplicity w_i per row, and AUC with integer
weights is computed from each model's score order sorted once (written by hand because the weighted AUC has to be
O(N) per replicate on millions of rows; sklearn re-sorts every call):
    AUC_w = sum_i w_i y_i (W_neg(score < s_i) + W_neg(score = s_i) / 2) / (W_pos W_neg).
"""

from typing import Dict, List, Sequence

import numpy as np


class RankedScores:
    """One model's scores sorted once; ``auc(weights)`` is the weighted AUC against labels ``y``."""

    def __init__(self, y: np.ndarray, scores: np.ndarray):
        if len(y) != len(scores):
            raise ValueError(f"{len(scores)} predictions for {len(y)} labels")
        self.order = np.argsort(scores, kind="mergesort")
        ranked = scores[self.order]
        self.tie_group = np.cumsum(np.r_[True, ranked[1:] != ranked[:-1]]) - 1
        self.num_groups = int(self.tie_group[-1]) + 1 if len(ranked) else 0
        self.y = np.asarray(y, dtype=np.float64)[self.order]

    def auc(self, weights: np.ndarray = None) -> float:
        w = np.ones_like(self.y) if weights is None else np.asarray(weights, np.float64)[self.order]
        pos = np.bincount(self.tie_group, w * self.y, self.num_groups)
        neg = np.bincount(self.tie_group, w * (1 - self.y), self.num_groups)
        below = np.cumsum(neg) - neg
        denom = pos.sum() * neg.sum()
        return float(np.dot(pos, below + 0.5 * neg) / denom) if denom > 0 else float("nan")


def paired_auc_difference(y: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                          num_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Dict[str, float]:
    """delta = mean_s AUC(A_s) - AUC(B_s) over seed-matched prediction pairs, with a paired bootstrap interval
    over test rows: {'delta', 'low', 'high', 'num_boot', 'num_pairs'}."""
    if len(preds_a) != len(preds_b) or not preds_a:
        raise ValueError(f"need matched, non-empty prediction lists; got {len(preds_a)} and {len(preds_b)}")
    a = [RankedScores(y, p) for p in preds_a]
    b = [RankedScores(y, p) for p in preds_b]
    delta = float(np.mean([x.auc() - z.auc() for x, z in zip(a, b)]))
    rng = np.random.default_rng(seed)
    n = len(y)
    reps = np.empty(num_boot)
    for i in range(num_boot):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        reps[i] = np.mean([x.auc(w) - z.auc(w) for x, z in zip(a, b)])
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(reps, [tail, 100 - tail]) if num_boot else (float("nan"),) * 2
    return {"delta": delta, "low": float(low), "high": float(high), "num_boot": num_boot,
            "num_pairs": len(preds_a)}


def percentile_interval(samples: List[float], level: float = 0.95) -> tuple:
    """(low, high) percentile interval of bootstrap replicates, NaNs ignored."""
    tail = 100 * (1 - level) / 2
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
