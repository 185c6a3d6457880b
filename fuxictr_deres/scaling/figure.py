"""The scaling figure: test AUC (mean +- std over seeds) against C = analytic FLOPs/sample on a log-x axis, with
each method's fitted F1 curve AUC(C) = A - B C^(-gamma), or, where F1 is flat (AUC does not rise with C, gamma at its
bound), the F2 line AUC% = a + gamma2 log2(C) dashed, so a falling sweep still shows its slope."""

from typing import Dict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..bench.figures import label_log_x  # noqa: E402
from .fits import f2_auc, is_flat  # noqa: E402


def _curve_and_label(name: str, res: dict, grid: np.ndarray):
    """(y values of the fitted curve on ``grid``, line style, legend label) for one method."""
    if "f1" not in res:
        return None, "-", name
    if is_flat(res["f1"]):
        f2 = res["f2"]
        low, high = res["f2_gamma_ci"]
        return (f2_auc(f2, grid), "--",
                f"{name}: F1 flat; F2 {f2['gamma']:+.3f} [{low:+.3f}, {high:+.3f}] AUC pts/doubling")
    low, high = res["gamma_ci"]
    return res["f1"](grid), "-", f"{name}: gamma={res['gamma']:.3f} [{low:.3f}, {high:.3f}]"


def scaling_figure(results: Dict[str, dict], path: str, title: str = "") -> str:
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (m, res) in enumerate(results.items()):
        if not res["compute"]:
            continue
        color = plt.cm.tab10(i % 10)
        grid = np.geomspace(min(res["compute"]) / 1.3, max(res["compute"]) * 1.3, 200)
        curve, style, label = _curve_and_label(m, res, grid)
        if curve is not None:
            ax.plot(grid, curve, style, color=color, lw=1.5)
        ax.errorbar(res["compute"], res["auc_mean"], yerr=res["auc_std"], fmt="o", capsize=3, color=color,
                    label=label)
        for d, c, a in zip(res["depths"], res["compute"], res["auc_mean"]):
            ax.annotate(f"L={d}", (c, a), textcoords="offset points", xytext=(5, 6 - 8 * (i % 3)), fontsize=7,
                        color=color)
    label_log_x(ax)
    ax.set_xlabel("C = forward FLOPs / sample (analytic)")
    ax.set_ylabel("test AUC (mean +- std over seeds)")
    ax.set_title(title or "AUC(C) = A - B C^(-gamma)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
