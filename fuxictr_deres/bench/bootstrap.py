"""Paired difference of test AUC between two models over seeds, with a two-level (hierarchical) bootstrap
interval that covers both training variance (seeds) and test-set sampling (rows) (specs/measurement.md).

Pairs s = 1..S match model A's run of seed s with reference B's run of seed s, scored on the same N test rows:
    d_s = AUC(y, p_A,s) - AUC(y, p_B,s),   delta = (1/S) sum_s d_s,   seed_std = std(d_1..d_S; ddof=1).
One replicate b draws S pair indices J_1..J_S with replacement (level 1: which training runs), then N row indices
with replacement (level 2: which test rows), as multiplicities w_i; the one row draw is shared by both models of
every drawn pair, since all runs are scored on the same test set:
    delta*_b = (1/S) sum_k [AUC_w(y, p_A,J_k) - AUC_w(y, p_B,J_k)].
The interval is the percentile interval of delta*_b (``interval`` = "seeds+rows"). With S = 1 the seed level
has nothing to draw and the interval covers test rows only (``interval`` = "rows", and seed_std is undefined):
training variance is then not in it. With few seeds the seed level is coarse (S = 3: 10 distinct draws) and
its variance of a mean is (S-1)/S times seed_std^2 / S, so such intervals are somewhat narrow.

AUC with integer weights is computed from each model's score order sorted once (written by hand because the
weighted AUC has to be O(N) per replicate on millions of rows; sklearn re-sorts every call):
    AUC_w = sum_i w_i y_i (W_neg(score < s_i) + W_neg(score = s_i) / 2) / (W_pos W_neg).
"""

from typing import Dict, Sequence

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


INTERVAL_SEEDS_ROWS = "seeds+rows"
INTERVAL_ROWS = "rows"


def paired_auc_difference(y: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                          num_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Dict[str, object]:
    """The mean seed-paired AUC difference A - B with its hierarchical bootstrap interval (module docstring):
    {'delta', 'low', 'high', 'seed_std', 'per_seed', 'interval', 'num_boot', 'num_pairs'}; ``preds_a[s]`` and
    ``preds_b[s]`` are the test predictions of one seed, on the rows of labels ``y``."""
    if len(preds_a) != len(preds_b) or not preds_a:
        raise ValueError(f"need matched, non-empty prediction lists; got {len(preds_a)} and {len(preds_b)}")
    a = [RankedScores(y, p) for p in preds_a]
    b = [RankedScores(y, p) for p in preds_b]
    per_seed = np.array([x.auc() - z.auc() for x, z in zip(a, b)])
    num_pairs, n = len(per_seed), len(y)
    rng = np.random.default_rng(seed)
    reps = np.empty(num_boot)
    for i in range(num_boot):
        pairs = np.bincount(rng.integers(0, num_pairs, num_pairs), minlength=num_pairs)    # level 1: seeds
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)             # level 2: rows
        drawn = np.flatnonzero(pairs)
        diffs = np.array([a[s].auc(w) - b[s].auc(w) for s in drawn])
        reps[i] = np.dot(pairs[drawn], diffs) / num_pairs
    low, high = percentile_interval(reps, level) if num_boot else (float("nan"),) * 2
    return {"delta": float(per_seed.mean()), "low": low, "high": high,
            "seed_std": float(np.std(per_seed, ddof=1)) if num_pairs > 1 else float("nan"),
            "per_seed": per_seed.tolist(), "interval": INTERVAL_SEEDS_ROWS if num_pairs > 1 else INTERVAL_ROWS,
            "num_boot": num_boot, "num_pairs": num_pairs}


def percentile_interval(samples: Sequence[float], level: float = 0.95) -> tuple:
    """(low, high) percentile interval of bootstrap replicates, NaNs ignored."""
    tail = 100 * (1 - level) / 2
    values = np.asarray(samples, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
