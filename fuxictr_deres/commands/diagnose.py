"""``fuxictr-deres diagnose``: depth diagnostics of trained checkpoints (alpha heatmaps, gates, ||a||/||y||,
||a_perp||/||y||, 1 - cos(h, y); mHC's H_res), one column per expid in one PNG, plus the numbers as JSON; and the
figure the routing is judged by: the AUC / logloss change when the routing is removed at evaluation
(routing_removal.json; see diagnostics.py for what "removed" means per rule)."""

import argparse
import itertools
import os

HELP = "depth diagnostics of trained checkpoints: alpha heatmap, gate means, ||a||/||y|| per read (PNG + JSON)"
EXAMPLE = "fuxictr-deres diagnose --config benchmark_configs --expid DeRes_demo --out results/diag_demo   # after: fuxictr-deres run --config benchmark_configs --expid DeRes_demo"


def _batches(args, params, model):
    """A function giving, each call, the validation set (at most --batches batches) or the synthetic batches on the
    model's FeatureMap."""
    from ..bench.synthetic import synthetic_batch
    if args.synthetic_batches:
        fixed = [synthetic_batch(model.feature_map, args.batch_size, seed=i) for i in range(args.synthetic_batches)]
        return lambda: fixed
    from ..runner import load_data
    data = load_data(params)
    _, valid_gen = data.loaders(params, "train")
    return lambda: itertools.islice(iter(valid_gen), args.batches) if args.batches else valid_gen


def execute(args: argparse.Namespace) -> int:
    import torch

    from ..bench.synthetic import build_for_measurement, expid_params, feature_map_for
    from ..config import load_expid, parse_overrides
    from ..diagnostics import collect_trace, mixing_report, plot_diagnostics, routing_removal_effect, write_json
    from ..runner import latest_checkpoint
    checkpoints = args.checkpoint or []
    if checkpoints and len(checkpoints) != len(args.expid):
        raise ValueError(f"give one --checkpoint per --expid ({len(args.expid)} expids, {len(checkpoints)} "
                         f"checkpoints), or none to use each expid's latest finished run in <model_root>")
    overrides = parse_overrides(args.set)
    traces, removals, mixings = {}, {}, {}
    for i, expid in enumerate(args.expid):
        params = expid_params(args.config, expid, overrides)
        if args.data_root:      # the prepared dataset is read from prepared_root (which load_expid already set)
            params["data_root"] = params["prepared_root"] = os.path.abspath(args.data_root)
        real = load_expid(args.config, expid)
        path = checkpoints[i] if checkpoints else latest_checkpoint(real["model_root"], expid)
        if not path or not os.path.isfile(path):
            path = path or f"(no finished run of {expid} in {real['model_root']}/results.jsonl)"
            raise FileNotFoundError(f"expid {expid}: checkpoint {path} not found (train it with `fuxictr-deres run "
                                    f"--expid {expid}`, or pass --checkpoint)")
        fm, _ = feature_map_for(params, synthetic=bool(args.synthetic_batches))
        model = build_for_measurement(params, fm)
        if not hasattr(model, "rule"):
            print(f"{expid}: model {params['model']} has no residual rule; skipped")
            continue
        try:
            model.load_weights(path)
        except RuntimeError as err:
            raise ValueError(f"expid {expid}: checkpoint {path} does not fit this model/config: {err}") from err
        batches = _batches(args, params, model)
        trace = collect_trace(model, batches())
        rule = params.get("residual") or type(model.rule).__name__
        traces[f"{expid} ({rule})"] = trace
        print(f"{expid}: rule {rule}, {len(trace)} reads traced" + ("" if trace else " (the rule records none)"))
        for e in trace:
            extra = []
            if "alpha_mean" in e:
                extra.append("alpha " + " ".join(f"{v:.3g}" for v in e["alpha_mean"]))
            if "gate_mean" in e:
                extra.append(f"gate {sum(e['gate_mean']) / len(e['gate_mean']):.3f}")
            if "read_to_identity" in e:
                extra.append(f"|a|/|y| {e['read_to_identity']:.3f}")
            if "perp_to_identity" in e:
                extra.append(f"|a_perp|/|y| {e['perp_to_identity']:.3f}; 1-cos(h,y) {e['input_off_identity']:.2e}")
            if "H_res" in e:
                extra.append("H_res diag " + " ".join(f"{row[j]:.2f}" for j, row in enumerate(e["H_res"])))
            print(f"   read {e['read']:>2}: " + "; ".join(extra))
        mixing = mixing_report(model)
        if mixing:
            mixings[f"{expid} ({rule})"] = mixing
        for m in mixing:
            tm = f", TokenMixer {m['global_from_tokenmixer']:.3f}" if "global_from_tokenmixer" in m else ""
            print(f"   mixing unit {m['unit']} (tau {m['tau']:.3g}, {m['blocks']} blocks of {m['block_width']}): W_G diag "
                  f"{m['global_diag']:.3f}, row distance from identity {m['global_from_identity']:.3f}, uniform "
                  f"{m['global_from_uniform']:.3f}{tm}, init {m['global_from_init']:.3f}; W_B diag {m['local_diag']:.3f}, "
                  f"from identity {m['local_from_identity']:.3f}, uniform {m['local_from_uniform']:.3f}, "
                  f"init {m['local_from_init']:.3f}")
        effect = routing_removal_effect(model, batches) if not args.no_removal else None
        if effect is not None:
            removals[f"{expid} ({rule})"] = effect
            print(f"   routing removed ({effect['removed']}): AUC {effect['AUC']:.5f} -> {effect['AUC_removed']:.5f} "
                  f"(routing's effect d_AUC {effect['d_AUC']:+.5f}), logloss {effect['logloss']:.5f} -> "
                  f"{effect['logloss_removed']:.5f} (d_logloss {effect['d_logloss']:+.5f})")
    os.makedirs(args.out, exist_ok=True)
    png, js = os.path.join(args.out, "depth_diagnostics.png"), os.path.join(args.out, "depth_diagnostics.json")
    plot_diagnostics(traces, png)
    write_json(traces, js)
    print(f"wrote {png} and {js}")
    if mixings:
        mx = os.path.join(args.out, "mixing.json")
        write_json(mixings, mx)
        print(f"wrote {mx}")
    if removals:
        rm = os.path.join(args.out, "routing_removal.json")
        write_json(removals, rm)
        print(f"wrote {rm}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("diagnose", help=HELP, description=HELP)
    parser.add_argument("--config", required=True, help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--expid", required=True, action="append", help="experiment id; repeat for side by side")
    parser.add_argument("--checkpoint", action="append",
                        help="checkpoint of each --expid, in order (default: the expid's latest finished run in "
                             "<model_root>/results.jsonl)")
    parser.add_argument("--out", required=True, help="output folder for depth_diagnostics.png/json")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a parameter (YAML value), as the checkpoint was trained")
    parser.add_argument("--data_root", default=None, help="root of the prepared datasets")
    parser.add_argument("--batches", type=int, default=20, help="validation batches to run (0 = all; default 20)")
    parser.add_argument("--synthetic-batches", type=int, default=0,
                        help="run N synthetic batches on a synthetic FeatureMap instead of the validation set "
                             "(the checkpoint must then come from a model on that map)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per synthetic batch (default 256)")
    parser.add_argument("--no-removal", action="store_true",
                        help="skip the routing-removal evaluation (AUC/logloss with the routing removed)")
    parser.set_defaults(func=execute)
