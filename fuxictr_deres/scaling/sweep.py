"""The depth sweep of a scaling study: every method at num_layers in ``depths`` x seeds, run through the benchmark
harness (one results store, resumable), then gathered as points (C = analytic FLOPs/sample, AUC and logloss per
seed) and fitted (fits.py)."""

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..bench.harness import RunSpec, plan, run_bench
from ..bench.summary import _metric, bench_records
from ..results import jsonable
from . import fits


def sweep_specs(models: List[str], dataset: str, depths: List[int], seeds: List[int],
                overrides: Optional[dict] = None) -> List[RunSpec]:
    return plan(models, [dataset], seeds, overrides, variants=[{"num_layers": int(d)} for d in depths])


@dataclass
class MethodPoints:
    """One method's sweep: per depth its C and the per-seed test AUC / logloss."""

    model: str
    depths: List[int] = field(default_factory=list)
    compute: List[float] = field(default_factory=list)
    auc: List[List[float]] = field(default_factory=list)
    logloss: List[List[float]] = field(default_factory=list)


def gather(out_dir: str, models: List[str], dataset: str, depths: List[int],
           overrides: Optional[dict] = None) -> Dict[str, MethodPoints]:
    """The sweep's records of ``out_dir`` as points per method (only runs of exactly this sweep's overrides)."""
    wanted = {json.dumps(jsonable(dict(overrides or {}, num_layers=int(d))), sort_keys=True): int(d)
              for d in depths}
    points = {m: MethodPoints(m) for m in models}
    cells: Dict[tuple, List[dict]] = {}
    for r in bench_records(out_dir):
        if r["bench_model"] in points and r["dataset_id"] == dataset and r.get("bench_variant") in wanted:
            cells.setdefault((r["bench_model"], wanted[r["bench_variant"]]), []).append(r)
    for m, p in points.items():
        for d in sorted(int(d) for d in depths):
            runs = cells.get((m, d))
            if not runs:
                continue
            p.depths.append(d)
            p.compute.append(float(runs[0]["flops_per_sample"]))
            p.auc.append([_metric(r, "AUC") for r in runs])
            p.logloss.append([_metric(r, "logloss") for r in runs])
    return points


def analyse(points: Dict[str, MethodPoints], reference: str, num_boot: int = 1000,
            match: Optional[tuple] = None) -> Dict[str, dict]:
    """Fits F1-F3 per method, gamma with its seed-bootstrap interval, the gamma ratio and compute multiplier
    against ``reference``, and the depth match (method at match[0] vs reference at match[1])."""
    out: Dict[str, dict] = {}
    for m, p in points.items():
        res = {"model": m, "depths": p.depths, "compute": p.compute,
               "auc_mean": [float(np.mean(v)) for v in p.auc], "auc_std": [_std(v) for v in p.auc],
               "logloss_mean": [float(np.mean(v)) for v in p.logloss],
               "logloss_std": [_std(v) for v in p.logloss], "seeds": [len(v) for v in p.auc]}
        if len(p.depths) >= 3:
            try:
                res.update(fits.gamma_with_interval(p.compute, p.auc, num_boot))
                res["f3"] = fits.fit_f3(p.compute, res["logloss_mean"])
            except (RuntimeError, ValueError) as err:
                res["fit_error"] = str(err)
        else:
            res["fit_error"] = f"{len(p.depths)} depths with results; the fits need 3 or more"
        out[m] = res
    ref = out.get(reference)
    for m, res in out.items():
        if m == reference or not ref or "f1" not in res or "f1" not in ref:
            continue
        flat = [name for name, r in ((m, res), (reference, ref)) if fits.is_flat(r["f1"])]
        if flat:
            res["undefined"] = (f"F1's gamma is at its lower bound for {' and '.join(flat)}: AUC does not rise with "
                                f"compute over these depths, so the gamma ratio and the compute multiplier are "
                                f"undefined")
            continue
        res["gamma_ratio"] = res["gamma"] / ref["gamma"]
        res["gamma_ratio_ci"] = fits.ratio_interval(res["gamma_samples"], ref["gamma_samples"])
        res["compute_multiplier"] = [fits.compute_multiplier(res["f1"], ref["f1"], c) for c in res["compute"]]
    for m, res in out.items():
        if m != reference and ref:
            res["depth_match"] = fits.depth_match(dict(zip(res["depths"], res["auc_mean"])),
                                                  dict(zip(ref["depths"], ref["auc_mean"])),
                                                  *(match or (None, None)))
    return out


def _std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def run_sweep(config_dir: str, models: List[str], dataset: str, depths: List[int], seeds: List[int], out_dir: str,
              overrides: Optional[dict] = None, data_root: Optional[str] = None, verbose: bool = False,
              reuse: Sequence[str] = (), gpu: int = -1, prepared_root: Optional[str] = None) -> List[dict]:
    """Train what is missing of the sweep (copying identical runs of ``reuse`` folders); returns the records
    added now."""
    specs = sweep_specs(models, dataset, depths, seeds, overrides)
    return run_bench(config_dir, specs, out_dir, data_root=data_root, verbose=verbose, reuse=reuse, gpu=gpu,
                     prepared_root=prepared_root)
