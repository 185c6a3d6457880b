"""Depth diagnostics of a trained model (specs/deres.md, "Diagnostics users expect"): run batches with
``rule.trace = []`` and average, per read r over the batches, what the rule records:

    DeRes / AttnRes (attnres_* subclass DeRes) / DenseFormer   alpha_mean[r, source] (and alpha_std),
                                                               gate_mean[r, dim] (dual path), ||a|| / ||y||
    mHC                                                        H_res[r] (n x n stream mixing), H_pre, H_post
    HC                                                         A_r[r] (n x n), A_m, B

and plot one column per model: (1) the depth weights alpha (read x source) heatmap, or mHC's H_res / HC's A_r
averaged over reads; (2) the gate's per-dimension mean per read; (3) ||a|| / ||y|| and ||a_perp|| / ||y|| per read.
A panel a rule does not record says so.

Moving is not learning: a read can grow while adding only a multiple of y, which the next norm cancels. So DeRes
also records ||a_perp|| / ||y|| (a_perp = a - (<a,y>/<y,y>) y per token) and 1 - cos(h, y), and the routing is
judged by its effect: ``routing_removal_effect`` evaluates the model as trained and with its routing removed
(``rule.remove_routing``; per rule, ``rule.routing_removal`` says what that means: DeRes dual = gate fixed to 1,
the identity path; attention-only / AttnRes = reads at their init, uniform 1/M for softmax; DenseFormer, HC, mHC,
learnable = their maps at init, the Pre-Norm residual) and reports the AUC and logloss change.
"""

import contextlib
import json
from typing import Callable, Dict, Iterable, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def collect_trace(model, batches: Iterable[dict]) -> List[dict]:
    """Per read, the batch-average of every numeric field the model's rule records (empty if it records none)."""
    rule = model.rule
    per_read: Dict[int, Dict[str, list]] = {}
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                rule.trace = []
                model(batch)
                for entry in rule.trace:
                    slot = per_read.setdefault(int(entry["read"]), {})
                    for key, value in entry.items():
                        if key != "read":
                            slot.setdefault(key, []).append(np.asarray(torch.as_tensor(value).float()))
    finally:
        rule.trace = None
    return [{"read": r, **{k: np.mean(np.stack(v), axis=0).tolist() for k, v in fields.items()}}
            for r, fields in sorted(per_read.items())]


@contextlib.contextmanager
def routing_removed(model):
    """Within the block the model's rule runs with its routing removed; on exit every rule parameter and flag is
    as before."""
    rule = model.rule
    saved = {k: v.detach().clone() for k, v in rule.state_dict().items()}
    identity_only = getattr(rule, "identity_only", None)           # DeRes' flag (not a parameter)
    rule.remove_routing()
    try:
        yield rule.routing_removal
    finally:
        rule.load_state_dict(saved)
        if identity_only is not None:
            rule.identity_only = identity_only


def predict(model, batches: Iterable[dict]):
    """(labels, predictions) as float64 numpy arrays over the batches, in eval mode without gradients."""
    model.eval()
    ys, ps = [], []
    with torch.no_grad():
        for batch in batches:
            ps.append(model(batch)["y_pred"].detach().double().cpu().reshape(-1))
            ys.append(model.get_labels(batch).double().cpu().reshape(-1))
    return torch.cat(ys).numpy(), torch.cat(ps).numpy()


def evaluate(model, batches: Iterable[dict]) -> Dict[str, float]:
    """AUC and logloss with FuxiCTR's metric functions."""
    from fuxictr.metrics import evaluate_metrics
    y, p = predict(model, batches)
    return {k: float(v) for k, v in evaluate_metrics(y, p, ["AUC", "logloss"]).items()}


def routing_removal_effect(model, batches: Callable[[], Iterable[dict]]) -> Optional[dict]:
    """Valid AUC / logloss as trained and with the routing removed (``batches()`` gives a fresh iterable);
    None for rules without routing. d_AUC > 0 means the routing helps."""
    if getattr(model.rule, "routing_removal", None) is None:
        return None
    trained = evaluate(model, batches())
    with routing_removed(model) as meaning:
        removed = evaluate(model, batches())
    return {"removed": meaning, "AUC": trained["AUC"], "logloss": trained["logloss"],
            "AUC_removed": removed["AUC"], "logloss_removed": removed["logloss"],
            "d_AUC": trained["AUC"] - removed["AUC"], "d_logloss": trained["logloss"] - removed["logloss"]}


def _row_tv(w: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean total-variation distance between the rows of two row-stochastic matrices (0 = equal, 1 = disjoint)."""
    return float(0.5 * (w - ref).abs().sum(-1).mean())


def mixing_report(model) -> List[dict]:
    """UniMixer's mixing matrices per UniMixing unit at the current temperature: W_G's and W_B's mean diagonal
    and row distances (total variation) from the identity, the uniform 1/n, the TokenMixer permutation and
    their own noise-free init (at the same temperature). Empty for models without UniMixing units."""
    from .layers.uni_mixing import UniMixing
    out = []
    with torch.no_grad():
        for i, unit in enumerate(getattr(model, "units", [])):
            if not isinstance(unit, UniMixing):
                continue
            w_local, w_global = (w.float().cpu() for w in unit.mixing_matrices())
            init_local, init_global = (w.float().cpu() for w in unit.initial_matrices())
            entry = {"unit": i, "tau": float(unit.tau), "blocks": unit.num_blocks, "block_width": unit.block}
            for name, w, init in (("global", w_global, init_global), ("local", w_local, init_local)):
                n = w.shape[-1]
                eye = torch.eye(n).expand_as(w)
                entry[f"{name}_diag"] = float(w.diagonal(dim1=-2, dim2=-1).mean())
                entry[f"{name}_from_identity"] = _row_tv(w, eye)
                entry[f"{name}_from_uniform"] = _row_tv(w, torch.full_like(w, 1.0 / n))
                entry[f"{name}_from_init"] = _row_tv(w, init)
            if unit.mixing_init == "tokenmixer":
                entry["global_from_tokenmixer"] = _row_tv(w_global, unit.global_pattern.float().cpu())
            out.append(entry)
    return out


def _ragged(rows: List[list]) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_diagnostics(traces: Dict[str, List[dict]], path: str) -> str:
    """One column per model (name -> collect_trace output), three rows of panels; returns the PNG path."""
    names = list(traces)
    fig, axes = plt.subplots(3, len(names), figsize=(4.6 * len(names), 10), squeeze=False)
    for col, name in enumerate(names):
        trace = traces[name]
        top, mid, bottom = axes[0][col], axes[1][col], axes[2][col]
        top.set_title(name, fontsize=9)
        if not trace:
            for ax in (top, mid, bottom):
                _note(ax, "this rule records no depth trace")
            continue
        reads = [e["read"] for e in trace]
        if "alpha_mean" in trace[0]:
            im = top.imshow(_ragged([e["alpha_mean"] for e in trace]), aspect="auto", cmap="viridis")
            top.set_xlabel("source (0 = X0 / b_0)")
            top.set_ylabel("read")
            top.set_yticks(range(len(reads)), reads, fontsize=6)
            fig.colorbar(im, ax=top, label="alpha (mean over batch)")
        elif "H_res" in trace[0] or "A_r" in trace[0]:
            key = "H_res" if "H_res" in trace[0] else "A_r"
            im = top.imshow(np.mean([np.asarray(e[key]) for e in trace], axis=0), cmap="viridis")
            top.set_xlabel("source stream")
            top.set_ylabel("target stream")
            fig.colorbar(im, ax=top, label=f"{key}, mean over reads")
        else:
            _note(top, "no depth weights in this rule's trace")
        if "gate_mean" in trace[0]:
            im = mid.imshow(_ragged([e["gate_mean"] for e in trace]), aspect="auto", cmap="coolwarm", vmin=0, vmax=1)
            mid.set_xlabel("dimension")
            mid.set_ylabel("read")
            fig.colorbar(im, ax=mid, label="gate g (1 = identity path)")
        else:
            _note(mid, "no gate (single-path rule)")
        if "read_to_identity" in trace[0]:
            bottom.plot(reads, [e["read_to_identity"] for e in trace], marker="o", label="||a|| / ||y||")
            if "perp_to_identity" in trace[0]:
                bottom.plot(reads, [e["perp_to_identity"] for e in trace], marker="s", label="||a_perp|| / ||y||")
            bottom.legend(fontsize=7)
            bottom.set_xlabel("read")
            bottom.set_ylabel("read size relative to y")
            bottom.grid(True, alpha=0.3)
        else:
            _note(bottom, "||a|| / ||y|| not recorded by this rule")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_json(traces: Dict[str, List[dict]], path: str) -> None:
    with open(path, "w") as fd:
        json.dump(traces, fd, indent=1)
