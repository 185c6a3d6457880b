"""``fuxictr-deres speed``: training-step time ratio of two expids measured in one process (alternating steps,
median of per-pair ratios), each model's samples/s and model FLOP/s (3 x forward FLOPs x batch / step) as a fraction
of the measured dense matmul throughput, and with ``--reference EXPID`` (any expid, e.g. FuxiCTR's DCNv2) a third
model timed in the same rounds whose model FLOP/s the two are divided by."""

import argparse

HELP = "training-step time ratio of two expids (interleaved, median) and achieved FLOP/s vs measured matmul"
EXAMPLE = "fuxictr-deres speed --config benchmark_configs --expid DeRes_criteo --expid OneTrans_criteo --synthetic --batch-size 512 --pairs 3"


def execute(args: argparse.Namespace) -> int:
    import statistics

    import torch

    from ..bench.synthetic import build_for_measurement, expid_params, feature_map_for, synthetic_batch
    from ..config import parse_overrides
    from ..flops import analytic_parts
    from ..speed import achieved_flops, interleaved_step_times, matmul_throughput, step_time_ratio, train_step
    if len(args.expid) != 2:
        raise ValueError(f"speed compares exactly two expids (--expid A --expid B), got {args.expid}")
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    setups = []
    for expid in args.expid:
        params = expid_params(args.config, expid, overrides)
        fm, note = feature_map_for(params, synthetic=args.synthetic)
        model = build_for_measurement(params, fm)
        batch = synthetic_batch(fm, args.batch_size, seed=1)
        flops = sum(analytic_parts(model, synthetic_batch(fm, 2))[0].values())
        setups.append((expid, params, model, batch, flops, note))
    if args.reference:
        params = expid_params(args.config, args.reference, overrides)
        fm, note = feature_map_for(params, synthetic=args.synthetic)
        model = build_for_measurement(params, fm)
        flops = sum(analytic_parts(model, synthetic_batch(fm, 2))[0].values())
        setups.append((args.reference, params, model, synthetic_batch(fm, args.batch_size, seed=1), flops, note))
    print(f"synthetic batches of {args.batch_size} rows on the {setups[0][5]}; torch threads "
          f"{torch.get_num_threads()}; {args.warmup} warm-up rounds, {args.pairs} timed rounds (rotating order)")
    steps = [train_step(setup[2], setup[3]) for setup in setups]
    if len(steps) == 2:
        res = step_time_ratio(steps[0], steps[1], args.pairs, args.warmup)
        times, ratio, ratios = [res["time_a"], res["time_b"]], res["ratio"], res["ratios"]
    else:
        res = interleaved_step_times(steps, args.pairs, args.warmup)
        times, ratios = res["median_times"], [1 / r for r in res["ratios"][1]]
        ratio = statistics.median(ratios)
    peaks, model_flops = {}, []
    for (expid, params, _, _, flops, _), t in zip(setups, times):
        rows = args.batch_size * int(params.get("num_tokens") or 1)
        d = int(params.get("d_model") or params.get("embedding_dim") or 64)
        kd = int(round(d * float(params.get("ffn_ratio") or 4)))
        if (rows, d, kd) not in peaks:
            peaks[(rows, d, kd)] = matmul_throughput(rows, d, kd)
        peak = peaks[(rows, d, kd)]
        got = achieved_flops(flops, args.batch_size, t)
        model_flops.append(got)
        print(f"{expid}: step {t * 1e3:.1f} ms (median), {args.batch_size / t:,.0f} samples/s, model FLOP/s "
              f"{got / 1e9:.2f} GFLOP/s (forward {flops:,.0f} FLOPs/sample x 3 x batch / step) = "
              f"{100 * got / peak:.1f}% of the measured ({rows}, {d}) @ ({d}, {kd}) matmul throughput "
              f"{peak / 1e9:.2f} GFLOP/s")
    print(f"step time ratio {args.expid[0]} / {args.expid[1]}: median {ratio:.3f} "
          f"(per pair: {', '.join(f'{r:.3f}' for r in ratios)})")
    if args.reference:
        ref_ratios = res["median_ratios"][2]
        print(f"model FLOP/s relative to the reference {args.reference} (same rounds): "
              + ", ".join(f"{expid} {model_flops[i] / model_flops[2]:.2f}" for i, expid in enumerate(args.expid))
              + f"; step time {args.reference} / {args.expid[0]}: median {ref_ratios:.3f}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("speed", help=HELP, description=HELP)
    parser.add_argument("--config", required=True, help="config directory (dataset_config.yaml + model_config)")
    parser.add_argument("--expid", required=True, action="append", help="experiment id; give exactly two (A, B)")
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per synthetic batch (default 4096)")
    parser.add_argument("--reference", metavar="EXPID",
                        help="a third expid timed in the same rounds (e.g. FuxiCTR's DCNv2_frappe): its model FLOP/s "
                             "is the yardstick the two are divided by")
    parser.add_argument("--pairs", type=int, default=7, help="timed A/B step pairs, or rounds with --reference "
                                                             "(default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up pairs or rounds (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for both expids (YAML value)")
    parser.add_argument("--synthetic", action="store_true",
                        help="always use a synthetic FeatureMap (default: the prepared dataset's when it exists; "
                             "its embedding tables make the optimizer step realistic)")
    parser.set_defaults(func=execute)
