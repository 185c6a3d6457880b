"""Figures of a benchmark: test AUC (mean +- std over seeds) against analytic FLOPs per sample, one panel per
dataset, log-x."""

import json
from typing import List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter  # noqa: E402


def label_log_x(ax) -> None:
    """Log-x labels at 1, 2, 5 x 10^k written 200k / 500k / 1M: a narrow FLOPs range otherwise shows one decade
    label, or minor labels that run into each other."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())


def variant_labels(rows: List[dict]) -> List[str]:
    """Each row's overrides without those every row shares (a common --set is not a distinguishing label)."""
    parsed = [json.loads(r.get("variant") or "{}") for r in rows]
    keys = set().union(*parsed) if parsed else set()
    shared = {k for k in keys if all(k in p and p[k] == parsed[0].get(k) for p in parsed)}
    return [" ".join(f"{k}={v}" for k, v in sorted(p.items()) if k not in shared) for p in parsed]


def auc_vs_flops(rows: List[dict], path: str) -> str:
    """Scatter with error bars of the summary rows; returns the PNG path."""
    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(8.5 * len(datasets), 5.0), squeeze=False)
    models = sorted({r["model"] for r in rows})
    # a colour x marker pair per model: tab10 alone repeats after ten models and a table has twenty or more
    styles = {m: (plt.cm.tab10(i % 10), "osD^vP*X<>"[(i // 10) % 10]) for i, m in enumerate(models)}
    for ax, dataset in zip(axes[0], datasets):
        for r, extra in zip(rows, variant_labels(rows)):
            if r["dataset"] != dataset or not r["flops_per_sample"]:
                continue
            label = f"{r['model']} {extra}".strip()
            color, marker = styles[r["model"]]
            ax.errorbar(r["flops_per_sample"], r["auc_mean"], yerr=r["auc_std"], fmt=marker, capsize=3,
                        color=color, label=label)
        label_log_x(ax)
        ax.set_xlabel("forward FLOPs / sample (analytic)")
        ax.set_ylabel("test AUC (mean +- std over seeds)")
        ax.set_title(dataset)
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
