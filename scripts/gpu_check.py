"""GPU check: DeRes vs OneTrans training steps at T=16, L=8, d=64 and d=256, batch 8192, in fp32, bf16 and compiled,
one prepared run under 10 minutes (issue 13).

    OUT=/path python scripts/gpu_check.py                     # CUDA, the full grid
    python scripts/gpu_check.py --device cpu --quick          # tiny sizes, proves the script end to end

Last, one DDP line (issue 16): DeRes_demo trained through ``torchrun --nproc_per_node 1`` (DistributedDataParallel
on one GPU, nccl) and in one plain process, same config; the row has both samples/s and test AUCs.

Per (d, mode) the two models' steps alternate (``speed.step_time_ratio``); written to $OUT/gpu_check.jsonl (one
line per measurement, appended as each finishes, so a run cut short keeps what it measured) and
$OUT/gpu_check.md (a table): samples/s, peak memory and the DeRes / OneTrans step ratio. $OUT defaults to
./gpu_check_out. Modes whose time would overrun ``--budget`` seconds are skipped and listed as skipped.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("fp32", "bf16", "compiled")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0       # process peak RSS (Linux: KiB)


def build(expid: str, overrides: dict, batch_size: int, device: torch.device):
    from fuxictr_deres.bench.synthetic import build_for_measurement, expid_params, feature_map_for, synthetic_batch
    params = expid_params(os.path.join(REPO, "benchmark_configs"), expid, overrides)
    params["gpu"] = device.index or 0 if device.type == "cuda" else -1
    fm, _ = feature_map_for(params, synthetic=True)
    return build_for_measurement(params, fm), synthetic_batch(fm, batch_size, seed=1)


def measure(d: int, mode: str, args, device: torch.device) -> dict:
    from fuxictr_deres.speed import step_time_ratio, train_step
    overrides = {"num_tokens": args.tokens, "d_model": d, "num_layers": args.layers, "num_heads": 4}
    if mode == "bf16":
        overrides["precision"] = "bf16"
    if mode == "compiled":
        overrides["compile"] = True
    steps, memory = [], []
    for expid in ("DeRes_criteo", "OneTrans_criteo"):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model, batch = build(expid, overrides, args.batch_size, device)
        step = train_step(model, batch)
        step()                                                            # compiles in compiled mode
        memory.append(peak_memory_mb(device))
        steps.append(step)
    res = step_time_ratio(steps[0], steps[1], args.pairs, args.warmup)
    return {"d_model": d, "mode": mode, "num_tokens": args.tokens, "num_layers": args.layers,
            "batch_size": args.batch_size, "device": str(device),
            "deres_samples_per_s": args.batch_size / res["time_a"],
            "onetrans_samples_per_s": args.batch_size / res["time_b"],
            "deres_peak_mb": memory[0], "onetrans_peak_mb": memory[1],
            "step_ratio_deres_over_onetrans": res["ratio"], "ratios": res["ratios"]}


def ddp_line(device: torch.device, out_dir: str, quick: bool) -> dict:
    """DeRes_demo for 1 epoch in one process and under torchrun with 1 process (DDP); samples/s and test AUC."""
    import subprocess
    gpu = "0" if device.type == "cuda" else "-1"
    out_dir = os.path.abspath(out_dir)
    tiny = ["--set", "num_tokens=4", "--set", "d_model=16", "--set", "num_layers=1", "--set", "num_heads=2"] if quick \
        else []
    common = ["run_expid.py", "--config", os.path.join(REPO, "benchmark_configs"), "--expid", "DeRes_demo",
              "--gpu", gpu, "--data_root", os.path.join(out_dir, "ddp_data"), "--set", "epochs=1", "--set", "verbose=0",
              *tiny]
    row = {"mode": "ddp_1proc_vs_plain", "expid": "DeRes_demo", "device": str(device)}
    for name, launcher in (("plain", [sys.executable]),
                           ("ddp", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node", "1"])):
        root = os.path.join(out_dir, f"ddp_{name}")
        proc = subprocess.run(launcher + common + ["--model_root", root], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} run failed: {(proc.stdout + proc.stderr)[-1500:]}")
        with open(os.path.join(root, "results.jsonl")) as fd:
            record = json.loads(fd.readlines()[-1])
        row.update({f"{name}_samples_per_s": record["train_samples_per_s"], f"{name}_test_auc": record["test"]["AUC"],
                    f"{name}_world_size": record.get("world_size")})
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (T=4, d=16, L=1, batch 64, 2 pairs)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--no-ddp", dest="ddp", action="store_false", help="skip the 1-process DDP line")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds; later modes are skipped past it")
    args = parser.parse_args(argv)
    sys.path.insert(0, REPO)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but torch sees no CUDA device (use --device cpu --quick)")
    if args.quick:
        args.tokens, args.layers, args.batch_size, args.pairs, args.warmup, widths = 4, 1, 64, 2, 1, (16,)
    else:
        args.tokens, args.layers, args.batch_size, args.pairs, args.warmup, widths = 16, 8, 8192, 7, 2, (64, 256)
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"gpu_check: unknown --modes {unknown}; expected a subset of {list(MODES)}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False                     # fp32 means fp32
    out_dir = os.environ.get("OUT") or "gpu_check_out"
    os.makedirs(out_dir, exist_ok=True)
    jsonl, table = os.path.join(out_dir, "gpu_check.jsonl"), os.path.join(out_dir, "gpu_check.md")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows, skipped, start = [], [], time.perf_counter()
    for d in widths:
        for mode in modes:
            elapsed = time.perf_counter() - start
            if elapsed > args.budget:
                skipped.append(f"d={d} {mode}")
                continue
            try:
                row = measure(d, mode, args, device)
            except Exception as err:                                     # keep the other measurements
                row = {"d_model": d, "mode": mode, "error": f"{type(err).__name__}: {err}"}
            row["seconds_since_start"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            with open(jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    if args.ddp:
        try:
            ddp = ddp_line(device, out_dir, args.quick)
        except Exception as err:                                         # keep the other measurements
            ddp = {"mode": "ddp_1proc_vs_plain", "error": f"{type(err).__name__}: {err}"}
        rows_ddp = [ddp]
        with open(jsonl, "a") as f:
            f.write(json.dumps(ddp) + "\n")
        print(json.dumps(ddp), flush=True)
    else:
        rows_ddp = []
    lines = [f"# GPU check on {name} (torch {torch.__version__})", "",
             f"T={args.tokens}, L={args.layers}, batch {args.batch_size}, median of {args.pairs} interleaved pairs", "",
             "| d | mode | DeRes samples/s | OneTrans samples/s | DeRes / OneTrans step | peak MB DeRes | "
             "peak MB OneTrans |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['d_model']} | {r['mode']} | error: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['d_model']} | {r['mode']} | {r['deres_samples_per_s']:,.0f} | "
                         f"{r['onetrans_samples_per_s']:,.0f} | {r['step_ratio_deres_over_onetrans']:.3f} | "
                         f"{r['deres_peak_mb']:,.0f} | {r['onetrans_peak_mb']:,.0f} |")
    for r in rows_ddp:
        if "error" in r:
            lines += ["", f"DDP (torchrun, 1 process) vs plain, DeRes_demo 1 epoch: error: {r['error']}"]
        else:
            lines += ["", f"DDP (torchrun, 1 process) vs plain, DeRes_demo 1 epoch: {r['ddp_samples_per_s']:,.0f} vs "
                      f"{r['plain_samples_per_s']:,.0f} train samples/s, test AUC {r['ddp_test_auc']:.6f} vs "
                      f"{r['plain_test_auc']:.6f}"]
    if skipped:
        lines += ["", f"skipped (past the {args.budget:.0f} s budget): {', '.join(skipped)}"]
    with open(table, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {jsonl} and {table}")
    return 1 if any("error" in r for r in rows + rows_ddp) else 0


if __name__ == "__main__":
    sys.exit(main())
