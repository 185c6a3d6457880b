"""``fuxictr-deres flops``: forward FLOPs per sample of expids, analytic and FlopCounterMode, and the residual
rule's overhead over its Pre-Norm twin."""

import argparse
import json
import os

HELP = "forward FLOPs per sample (analytic and FlopCounterMode) and the residual rule's overhead over Pre-Norm"
EXAMPLE = "fuxictr-deres flops --config benchmark_configs --expid DeRes_criteo --synthetic --set num_layers=8"


def _fmt(value) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:,.0f}"


def execute(args: argparse.Namespace) -> int:
    from ..bench.synthetic import expid_params, feature_map_for
    from ..config import parse_overrides
    from ..flops import expid_flops, has_rule, overhead_grid, prenorm_twin, rule_overhead
    overrides = parse_overrides(args.set)
    out = []
    for expid in args.expid:
        params = expid_params(args.config, expid, overrides)
        fm, fm_note = feature_map_for(params, synthetic=args.synthetic)
        print(f"== {expid}: model {params['model']}, residual {params.get('residual', 'default')}, "
              f"T={params.get('num_tokens')} d={params.get('d_model')} L={params.get('num_layers')}")
        print(f"   built on the {fm_note}")
        if args.overhead_grid:
            if not has_rule(params, fm):
                print(f"   {params['model']} has no residual rule: no Pre-Norm twin, no overhead grid")
                continue
            rows = overhead_grid(params, fm, args.widths, args.depths)
            print(f"   {'d_model':>7} {'L':>3} {'FLOPs/sample':>14} {'Pre-Norm':>14} {'overhead':>9} {'backbone':>9}")
            for r in rows:
                print(f"   {r['d_model']:>7} {r['num_layers']:>3} {_fmt(r['flops']):>14} "
                      f"{_fmt(r['prenorm_flops']):>14} {100 * r['overhead']:>8.2f}% "
                      f"{100 * r['backbone_overhead']:>8.2f}%")
            out.append({"expid": expid, "overhead_grid": rows})
            continue
        rep = expid_flops(params, fm, args.batch_size)
        print(f"   {'':24}{'analytic':>16}{'FlopCounterMode':>18}{'counted/analytic':>18}")
        for label, a, c in (("whole model", rep.analytic_total, rep.counted_total),
                            ("backbone (units + rule)", rep.analytic_backbone, rep.counted_backbone)):
            ratio = f"{c / a:.3f}" if a else "n/a"
            print(f"   {label:<24}{_fmt(a):>16}{_fmt(c):>18}{ratio:>18}")
        print("   analytic parts: " + ", ".join(f"{k} {_fmt(v)}" for k, v in rep.analytic_parts.items()))
        entry = {"expid": expid, "feature_map": fm_note, **rep.as_dict()}
        if has_rule(params, fm):
            base = expid_flops(prenorm_twin(params), fm, args.batch_size, counted=False)
            overhead = rule_overhead(rep, base)
            bb = (rep.analytic_backbone - base.analytic_backbone) / base.analytic_backbone
            print(f"   overhead over the Pre-Norm twin: {100 * overhead:+.2f}% whole model, {100 * bb:+.2f}% "
                  f"backbone (Pre-Norm twin: {_fmt(base.analytic_total)} FLOPs/sample)")
            entry.update(prenorm_flops=base.analytic_total, overhead=overhead, backbone_overhead=bb)
        else:
            print(f"   {params['model']} has no swappable residual rule: no Pre-Norm twin")
        for note in rep.notes:
            print(f"   note: {note}")
        out.append(entry)
    print("FlopCounterMode counts matmul-family ops only (SDPA on CPU through a registered formula); the analytic "
          "count adds elementwise work, so counted/analytic < 1 by the elementwise share.")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fd:
            json.dump(out, fd, indent=2)
        print(f"wrote {args.json}")
    return 0


def _ints(text: str):
    return tuple(int(v) for v in text.split(","))


def register(subparsers) -> None:
    parser = subparsers.add_parser("flops", help=HELP, description=HELP)
    parser.add_argument("--config", required=True, help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--expid", required=True, action="append", help="experiment id; repeat for several")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a model parameter (value read as YAML), e.g. --set num_layers=8")
    parser.add_argument("--overhead-grid", action="store_true",
                        help="print the rule's overhead over Pre-Norm for every --widths x --depths (analytic)")
    parser.add_argument("--widths", type=_ints, default=(32, 64, 128), help="d_model values (default 32,64,128)")
    parser.add_argument("--depths", type=_ints, default=(4, 8, 16), help="num_layers values (default 4,8,16)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="rows of the synthetic batch the counter runs on (default 64; per-batch parameter "
                             "work is divided by it)")
    parser.add_argument("--synthetic", action="store_true",
                        help="always use a synthetic FeatureMap (default: the prepared dataset's when it exists)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.set_defaults(func=execute)
