"""``fuxictr-deres scaling``: the compute-AUC scaling study (depth sweep through the benchmark harness, fits F1-F3,
gamma with a seed-bootstrap interval, gamma ratio, compute multiplier at equal AUC, figure and report)."""

import argparse
import json
import os

HELP = "depth sweep of several methods, scaling-law fits (F1-F3), gamma ratio, compute multiplier, figure"
EXAMPLE = "fuxictr-deres scaling --config benchmark_configs --models DeRes,OneTrans --dataset demo --depths 1,2 --seeds 1 --out results/scaling_demo"


def _list(text: str):
    return [v.strip() for v in text.split(",") if v.strip()]


def report_markdown(results: dict, reference: str, dataset: str) -> str:
    from ..scaling.fits import is_flat
    lines = [f"# Compute-AUC scaling on {dataset}", "",
             "C = analytic forward FLOPs/sample. F1: AUC = A - B C^(-gamma) (primary); F2: AUC% = a + gamma2 "
             "log2(C); F3: logloss = A C^(-alpha). Intervals: 95% bootstrap over seeds.", "",
             "| method | L | C (FLOPs/sample) | seeds | test AUC | test logloss |", "|---|---|---|---|---|---|"]
    for m, r in results.items():
        for i, d in enumerate(r["depths"]):
            lines.append(f"| {m} | {d} | {r['compute'][i]:,.0f} | {r['seeds'][i]} | {r['auc_mean'][i]:.4f} +- "
                         f"{r['auc_std'][i]:.4f} | {r['logloss_mean'][i]:.4f} +- {r['logloss_std'][i]:.4f} |")
    lines += ["", f"| method | F1 A | F1 B | F1 gamma [95% CI] | F2 gamma2 (AUC pts / doubling) [95% CI] | "
                  f"F3 alpha | gamma / gamma_{reference} [95% CI] |", "|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        if "f1" not in r:
            lines.append(f"| {m} | {r.get('fit_error', 'no fit')} ||||||")
            continue
        f1, (lo, hi), (lo2, hi2) = r["f1"], r["gamma_ci"], r["f2_gamma_ci"]
        ratio = "ref" if m == reference else (
            f"{r['gamma_ratio']:.2f} [{r['gamma_ratio_ci'][0]:.2f}, {r['gamma_ratio_ci'][1]:.2f}]"
            if "gamma_ratio" in r else "undefined (flat fit)" if "undefined" in r else "n/a")
        gamma = "at bound (AUC not rising)" if is_flat(f1) else f"{f1.gamma:.3f}"
        lines.append(f"| {m} | {f1.A:.4f} | {f1.B:.4g} | {gamma} [{lo:.3f}, {hi:.3f}] | "
                     f"{r['f2']['gamma']:.3f} [{lo2:.3f}, {hi2:.3f}] | {r['f3']['alpha']:.4f} | {ratio} |")
    lines.append("")
    for m, r in results.items():
        if "compute_multiplier" in r:
            mult = ", ".join(f"L={d}: {x:.2f}x" for d, x in zip(r["depths"], r["compute_multiplier"]))
            lines.append(f"- compute {reference} needs to match {m}'s fitted AUC (C_ref / C): {mult}")
        if "undefined" in r:
            lines.append(f"- {m} vs {reference}: {r['undefined']}")
        match = r.get("depth_match")
        if match:
            verb = "reaches" if match["reaches"] else "does not reach"
            lines.append(f"- {m} at L={match['method_depth']} (AUC {match['method_auc']:.4f}) {verb} {reference} "
                         f"at L={match['reference_depth']} (AUC {match['reference_auc']:.4f})")
    return "\n".join(lines) + "\n"


def _jsonable(results: dict) -> dict:
    out = {}
    for m, r in results.items():
        entry = {k: v for k, v in r.items() if k not in ("f1", "gamma_samples", "f2_samples")}
        if "f1" in r:
            entry["f1"] = {"A": r["f1"].A, "B": r["f1"].B, "gamma": r["f1"].gamma, "rmse": r["f1"].rmse}
        out[m] = entry
    return out


def execute(args: argparse.Namespace) -> int:
    from ..bench.harness import added_text
    from ..config import parse_overrides
    from ..scaling.figure import scaling_figure
    from ..scaling.sweep import analyse, gather, run_sweep
    models, depths = _list(args.models), [int(d) for d in _list(args.depths)]
    seeds = [int(s) for s in _list(args.seeds)]
    reference = args.reference or ("OneTrans" if "OneTrans" in models else models[-1])
    overrides = parse_overrides(args.set)
    if not args.report_only:
        added = run_sweep(args.config, models, args.dataset, depths, seeds, args.out, overrides, args.data_root,
                          args.verbose, args.reuse or (), gpu=args.gpu, prepared_root=args.prepared_root)
        print(f"{added_text(added)}; results in {args.out}/results.jsonl")
    match = tuple(int(v) for v in args.match.split(":")) if args.match else None
    results = analyse(gather(args.out, models, args.dataset, depths, overrides), reference, args.bootstrap, match)
    text = report_markdown(results, reference, args.dataset)
    with open(os.path.join(args.out, "scaling.md"), "w") as fd:
        fd.write(text)
    with open(os.path.join(args.out, "scaling.json"), "w") as fd:
        json.dump(_jsonable(results), fd, indent=2)
    scaling_figure(results, os.path.join(args.out, "scaling.png"), f"{args.dataset}: depth sweep")
    print(text, end="")
    print(f"wrote {args.out}/scaling.md, scaling.json, scaling.png")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("scaling", help=HELP, description=HELP)
    parser.add_argument("--config", required=True, help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--models", required=True, help="comma-separated models; expids <Model>_<dataset>")
    parser.add_argument("--dataset", required=True, help="dataset id, e.g. frappe")
    parser.add_argument("--depths", default="1,2,4,8,16", help="num_layers values (default 1,2,4,8,16)")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument("--reference", default=None, help="reference method (default OneTrans if listed)")
    parser.add_argument("--match", default=None, metavar="LM:LR",
                        help="depth match to report: method at LM vs reference at LR (default: the two largest "
                             "depths, e.g. 8:16)")
    parser.add_argument("--out", required=True, help="output folder (a benchmark folder: resumable)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every run (YAML value)")
    parser.add_argument("--data_root", default=None, help="root of the dataset source files")
    parser.add_argument("--prepared_root", default=None, help="root of the prepared datasets (default: data_root)")
    parser.add_argument("--gpu", type=int, default=-1, help="GPU index, -1 for CPU (default)")
    parser.add_argument("--reuse", action="append", metavar="FOLDER",
                        help="a bench/scaling output folder whose runs with an identical training config are copied "
                             "instead of trained (repeatable), e.g. a table's L=4 runs for the sweep's L=4 points")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates over seeds (default 1000)")
    parser.add_argument("--report-only", action="store_true", help="only refit and rewrite the report of --out")
    parser.add_argument("--verbose", action="store_true", help="FuxiCTR's per-batch progress bars in the log")
    parser.set_defaults(func=execute)
