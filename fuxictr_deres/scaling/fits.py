"""Compute-AUC scaling fits (specs/measurement.md), C = analytic forward FLOPs per sample:

    F1 (primary)  AUC(C) = A - B C^(-gamma)     non-linear least squares, A > best observed AUC (and <= a_max = 1),
                                                B > 0, gamma > 0
    F2            AUC% = a + gamma2 log2(C)     AUC points gained per doubling of compute
    F3            logloss = A C^(-alpha)

F1 is fitted in x = C / C0 (C0 = the smallest C) so that B is of order one whatever the FLOP scale; the start point
is the best (A, B) of a linear least-squares solve on a grid of gamma. Bootstrap over seeds: each replicate resamples,
at every depth, that depth's seeds with replacement, averages them and refits.
"""

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ..bench.bootstrap import percentile_interval


@dataclass
class PowerLawAUC:
    """F1: AUC(C) = A - B C^(-gamma)."""

    A: float
    B: float
    gamma: float
    rmse: float = float("nan")

    def __call__(self, c) -> np.ndarray:
        return self.A - self.B * np.power(np.asarray(c, np.float64), -self.gamma)

    def compute_for(self, auc: float) -> float:
        """The C at which the fit reaches ``auc`` (inf if it never does: auc >= A)."""
        if auc >= self.A:
            return float("inf")
        return float((self.B / (self.A - auc)) ** (1.0 / self.gamma))


#: F1's lower bound on gamma (the fit needs gamma > 0)
GAMMA_MIN = 1e-6


def is_flat(fit: "PowerLawAUC") -> bool:
    """Whether F1's gamma sits at its lower bound: AUC does not rise with compute over the points, the fitted curve
    is a constant, and "the compute at equal AUC" (and any ratio of gammas) has no meaning."""
    return fit.gamma <= 100 * GAMMA_MIN


def _f1_scaled(x, a, b, g):
    return a - b * np.power(x, -g)


def fit_f1(compute: Sequence[float], auc: Sequence[float], a_max: float = 1.0) -> PowerLawAUC:
    """F1 by scipy.optimize.curve_fit with A in (max(auc), a_max], B > 0, gamma > 0."""
    c = np.asarray(compute, np.float64)
    y = np.asarray(auc, np.float64)
    if len(c) < 3:
        raise ValueError(f"F1 has 3 parameters: it needs at least 3 compute points, got {len(c)}")
    c0 = c.min()
    x = c / c0
    a_low = y.max() + 1e-9
    a_high = max(a_max, a_low + 1e-6)
    best = None
    for g in np.logspace(-3, 1, 161):                      # start point: linear least squares at fixed gamma
        design = np.stack([np.ones_like(x), -np.power(x, -g)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        a, b = min(max(a, a_low), a_high), max(b, 1e-9)
        sse = float(np.sum((_f1_scaled(x, a, b, g) - y) ** 2))
        if best is None or sse < best[0]:
            best = (sse, a, b, g)
    _, a0, b0, g0 = best
    a0 = min(max(a0, a_low + 1e-12), a_high - 1e-12) if a_high > a_low else a_low
    with warnings.catch_warnings():                        # 3 points leave no covariance: not needed here
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, _ = curve_fit(_f1_scaled, x, y, p0=[a0, b0, g0],
                            bounds=([a_low, 1e-12, GAMMA_MIN], [a_high, np.inf, 10.0]), method="trf",
                            ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=20000)
    a, b, g = (float(v) for v in popt)
    rmse = float(np.sqrt(np.mean((_f1_scaled(x, a, b, g) - y) ** 2)))
    return PowerLawAUC(a, b * c0 ** g, g, rmse)                # B C^-g = b (C / C0)^-g


def fit_f2(compute: Sequence[float], auc: Sequence[float]) -> Dict[str, float]:
    """F2: AUC% = a + gamma2 log2(C) by least squares; {'a', 'gamma'}."""
    slope, intercept = np.polyfit(np.log2(np.asarray(compute, np.float64)), 100 * np.asarray(auc, np.float64), 1)
    return {"a": float(intercept), "gamma": float(slope)}


def f2_auc(f2: Dict[str, float], compute) -> np.ndarray:
    """AUC (a fraction, not %) on F2's line at ``compute``: (a + gamma2 log2 C) / 100."""
    return (f2["a"] + f2["gamma"] * np.log2(np.asarray(compute, np.float64))) / 100


def _f3_scaled(x, a, alpha):
    return a * np.power(x, -alpha)


def fit_f3(compute: Sequence[float], logloss: Sequence[float]) -> Dict[str, float]:
    """F3: logloss = A C^(-alpha), least squares in logloss started from the log-log line; {'A', 'alpha'}."""
    c = np.asarray(compute, np.float64)
    y = np.asarray(logloss, np.float64)
    c0 = c.min()
    x = c / c0
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, _ = curve_fit(_f3_scaled, x, y, p0=[np.exp(intercept), -slope], ftol=1e-15, xtol=1e-15, gtol=1e-15,
                            maxfev=20000)
    a, alpha = (float(v) for v in popt)
    return {"A": a * c0 ** alpha, "alpha": alpha}


def seed_bootstrap(compute: Sequence[float], values_per_point: Sequence[Sequence[float]], statistic,
                   num_boot: int = 1000, seed: int = 0) -> List[float]:
    """``statistic(compute, means)`` over replicates that resample each point's seeds with replacement."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(num_boot):
        means = [float(np.mean(rng.choice(np.asarray(v, np.float64), size=len(v), replace=True)))
                 for v in values_per_point]
        try:
            samples.append(float(statistic(compute, means)))
        except (RuntimeError, ValueError):                 # a replicate the fit cannot follow counts as missing
            samples.append(float("nan"))
    return samples


def gamma_with_interval(compute: Sequence[float], auc_per_point: Sequence[Sequence[float]],
                        num_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Dict[str, object]:
    """F1 gamma on the seed means with its bootstrap interval over seeds; also F2's slope and its interval."""
    means = [float(np.mean(v)) for v in auc_per_point]
    f1 = fit_f1(compute, means)
    g1 = seed_bootstrap(compute, auc_per_point, lambda c, m: fit_f1(c, m).gamma, num_boot, seed)
    g2 = seed_bootstrap(compute, auc_per_point, lambda c, m: fit_f2(c, m)["gamma"], num_boot, seed)
    return {"f1": f1, "gamma": f1.gamma, "gamma_ci": percentile_interval(g1, level), "gamma_samples": g1,
            "f2": fit_f2(compute, means), "f2_gamma_ci": percentile_interval(g2, level), "f2_samples": g2}


def ratio_interval(samples_a: Sequence[float], samples_b: Sequence[float], level: float = 0.95) -> tuple:
    """Percentile interval of a / b over paired replicates (independent resamples of two methods)."""
    a, b = np.asarray(samples_a, np.float64), np.asarray(samples_b, np.float64)
    return percentile_interval(list(a / b), level)


def compute_multiplier(method: PowerLawAUC, reference: PowerLawAUC, compute: float) -> float:
    """How much more compute the reference needs to reach the method's fitted AUC at ``compute``:
    C_ref(AUC_method(C)) / C (inf when the reference's fit never reaches it)."""
    return reference.compute_for(float(method(compute))) / compute


def depth_match(method_auc: Dict[int, float], reference_auc: Dict[int, float],
                method_depth: Optional[int] = None, reference_depth: Optional[int] = None) -> Optional[dict]:
    """Whether the method at ``method_depth`` (default: the second largest depth) reaches the reference at
    ``reference_depth`` (default: the largest), on mean test AUC."""
    depths = sorted(set(method_auc) & set(reference_auc))
    if len(depths) < 2:
        return None
    md = method_depth if method_depth is not None else depths[-2]
    rd = reference_depth if reference_depth is not None else depths[-1]
    if md not in method_auc or rd not in reference_auc:
        return None
    return {"method_depth": md, "reference_depth": rd, "method_auc": method_auc[md],
            "reference_auc": reference_auc[rd], "reaches": bool(method_auc[md] >= reference_auc[rd])}
