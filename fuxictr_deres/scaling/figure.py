"""The scaling figure: test AUC (mean +- std over seeds) against C = analytic FLOPs/sample on a log-x axis, with
each method's fitted F1 curve AUC(C) = A - B C^(-gamma)."""

from typing import Dict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def scaling_figure(results: Dict[str, dict], path: str, title: str = "") -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (m, res) in enumerate(results.items()):
        if not res["compute"]:
            continue
        color = plt.cm.tab10(i % 10)
        label = m
        if "f1" in res:
            low, high = res["gamma_ci"]
            label = f"{m}: gamma={res['gamma']:.3f} [{low:.3f}, {high:.3f}]"
            grid = np.geomspace(min(res["compute"]) / 1.3, max(res["compute"]) * 1.3, 200)
            ax.plot(grid, res["f1"](grid), color=color, lw=1.5)
        ax.errorbar(res["compute"], res["auc_mean"], yerr=res["auc_std"], fmt="o", capsize=3, color=color,
                    label=label)
        for d, c, a in zip(res["depths"], res["compute"], res["auc_mean"]):
            ax.annotate(f"L={d}", (c, a), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("C = forward FLOPs / sample (analytic)")
    ax.set_ylabel("test AUC (mean +- std over seeds)")
    ax.set_title(title or "AUC(C) = A - B C^(-gamma)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
