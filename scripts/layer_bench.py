"""Forward+backward time of each option of the token backbone's layers, interleaved (see docs/speed.md).

    python scripts/layer_bench.py [--threads 1] [--repeats 15] [--shapes 1024x8x32,4096x16x64]

For each shape B x T x d and each layer, the options run round-robin ``repeats`` times (so drift on a shared machine
hits all of them alike); printed: the median milliseconds of each option and its ratio to the first option (today's
code path).
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fwd_bwd(make_inputs, fn):
    """A closure running fn on fresh-grad inputs, forward and backward of sum(out * r)."""
    inputs = make_inputs()

    def run():
        for t in inputs:
            if isinstance(t, torch.Tensor) and t.requires_grad:
                t.grad = None
        out = fn(*inputs)
        out.backward(torch.ones_like(out))
    return run


def compare(title: str, options: dict, repeats: int) -> None:
    for fn in options.values():
        fn()
        fn()
    times = {name: [] for name in options}
    for _ in range(repeats):
        for name, fn in options.items():
            times[name].append(timed(fn))
    base = None
    row = []
    for name, ts in times.items():
        med = statistics.median(ts)
        base = base or med
        row.append(f"{name} {med * 1e3:.2f} ms ({med / base:.2f})")
    print(f"  {title}: " + " | ".join(row), flush=True)


def bench_linear(b, t, d, e, repeats):
    def mk_bt():
        return (torch.randn(b, t, d, requires_grad=True), torch.randn(t, d, e, requires_grad=True),
                torch.randn(t, e, requires_grad=True))

    def mk_tb():
        return (torch.randn(t, b, d, requires_grad=True), torch.randn(t, d, e, requires_grad=True),
                torch.randn(t, e, requires_grad=True))
    compare(f"token linear {d}->{e}", {
        "einsum (B,T,d)": fwd_bwd(mk_bt, lambda x, w, bias: torch.einsum("btd,tde->bte", x, w) + bias),
        "transpose+bmm+transpose": fwd_bwd(mk_bt, lambda x, w, bias: torch.baddbmm(
            bias[:, None], x.transpose(0, 1), w).transpose(0, 1).contiguous()),
        "baddbmm token-major (T,B,d)": fwd_bwd(mk_tb, lambda x, w, bias: torch.baddbmm(bias[:, None], x, w)),
        "bmm+add token-major": fwd_bwd(mk_tb, lambda x, w, bias: torch.bmm(x, w) + bias[:, None]),
        "shared matmul (ref)": fwd_bwd(mk_bt, lambda x, w, bias: x @ w[0] + bias[0]),
    }, repeats)


def attention_explicit(q, k, v):
    s = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5)
    return torch.softmax(s, dim=-1) @ v


def bench_attention(b, t, d, h, repeats):
    dh = d // h

    def mk():
        return tuple(torch.randn(b, h, t, dh, requires_grad=True) for _ in range(3))

    def mk_tb():
        # token-major projections (T, B, d) seen as (B, H, T, dh) views
        return tuple(torch.randn(t, b, d, requires_grad=True) for _ in range(3))

    def heads(x):
        return x.view(t, b, h, dh).permute(1, 2, 0, 3)

    def tb_explicit(q, k, v):
        q, k, v = heads(q), heads(k), heads(v)
        return attention_explicit(q, k, v).permute(2, 0, 1, 3).reshape(t, b, d)

    def tb_sdpa(q, k, v):
        return F.scaled_dot_product_attention(heads(q), heads(k), heads(v)).permute(2, 0, 1, 3).reshape(t, b, d)
    compare(f"attention T={t} H={h} dh={dh}", {
        "SDPA (B,H,T,dh)": fwd_bwd(mk, F.scaled_dot_product_attention),
        "explicit (B,H,T,dh)": fwd_bwd(mk, attention_explicit),
        "SDPA token-major": fwd_bwd(mk_tb, tb_sdpa),
        "explicit token-major": fwd_bwd(mk_tb, tb_explicit),
    }, repeats)


def bench_norm(b, t, d, repeats):
    norm = torch.nn.RMSNorm(d, eps=1e-6)

    def mk():
        return torch.randn(b, t, d, requires_grad=True), torch.ones(d, requires_grad=True)

    def manual(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g
    compare(f"RMSNorm d={d}", {
        "nn.RMSNorm": fwd_bwd(mk, lambda x, g: norm(x)),
        "F.rms_norm": fwd_bwd(mk, lambda x, g: F.rms_norm(x, (d,), g, 1e-6)),
        "manual rsqrt": fwd_bwd(mk, manual),
        "no gain (folded)": fwd_bwd(mk, lambda x, g: F.rms_norm(x, (d,), None, 1e-6)),
    }, repeats)


def bench_activation(b, t, e, repeats):
    def mk():
        return (torch.randn(b, t, e, requires_grad=True),)
    compare(f"activation width {e}", {
        "GELU (erf)": fwd_bwd(mk, F.gelu),
        "GELU (tanh)": fwd_bwd(mk, lambda x: F.gelu(x, approximate="tanh")),
        "SiLU": fwd_bwd(mk, F.silu),
        "ReLU": fwd_bwd(mk, F.relu),
    }, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--shapes", default="1024x8x32,4096x16x64,1024x16x128",
                        help="comma-separated BxTxd (heads = 4)")
    parser.add_argument("--only", default="linear,attention,norm,activation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    only = set(args.only.split(","))
    for shape in args.shapes.split(","):
        b, t, d = (int(v) for v in shape.split("x"))
        print(f"B={b} T={t} d={d} (torch {torch.__version__}, {torch.get_num_threads()} threads, median of "
              f"{args.repeats}, ratio to the first option)", flush=True)
        if "linear" in only:
            bench_linear(b, t, d, 3 * d, args.repeats)
            bench_linear(b, t, d, 4 * d, args.repeats)
            bench_linear(b, t, 4 * d, d, args.repeats)
        if "attention" in only:
            bench_attention(b, t, d, 4, args.repeats)
        if "norm" in only:
            bench_norm(b, t, d, args.repeats)
        if "activation" in only:
            bench_activation(b, t, 4 * d, args.repeats)


if __name__ == "__main__":
    main()
