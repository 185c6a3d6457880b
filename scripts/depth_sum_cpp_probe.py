"""How much a hand-written C++ kernel would save on DeRes' depth-weighted sums (docs/speed.md, issue 13).

    pip install ninja        # torch's JIT extension build needs it; not a dependency of the package
    OMP_NUM_THREADS=1 python scripts/depth_sum_cpp_probe.py

Times the 29 (read, source) pairs of DeRes_frappe's reads (B=1024, T=8, d=32, L=4: reads over 1, 2, 2, 3, 3, 4, 4,
5, 5 sources), forward + backward, with ``DepthWeightedSum`` (torch ops) and with a straightforward C++ kernel of the
same closed form (one pass over each row: the sum forward; the dots and the scaled copies backward; -ffast-math so that the dots vectorise), interleaved,
median of 15. The kernel is compiled on first use (about 30 s): it is a probe, not used by the models.
"""

import time

import torch
from torch.utils.cpp_extension import load_inline

from fuxictr_deres.cpu_allocator import keep_freed_memory
from fuxictr_deres.residuals.block_attention import depth_weighted_sum
from fuxictr_deres.speed import step_time_ratio

KERNEL = r"""
#include <torch/extension.h>
#include <vector>

// rows are (b, t) of (B, T, d) tensors with any strides on b and t and a contiguous d
torch::Tensor forward(torch::Tensor alpha, std::vector<torch::Tensor> src) {
  auto out = torch::empty_like(src[0]);
  const int64_t B = out.size(0), T = out.size(1), D = out.size(2), M = alpha.size(2);
  AT_DISPATCH_FLOATING_TYPES(alpha.scalar_type(), "depth_sum_forward", [&] {
    std::vector<const scalar_t*> p;
    for (auto& s : src) p.push_back(s.data_ptr<scalar_t>());
    const scalar_t* al = alpha.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b) {
        const scalar_t* w = al + b * alpha.stride(0) + t * alpha.stride(1);
        scalar_t* __restrict__ row = o + b * out.stride(0) + t * out.stride(1);
        for (int64_t j = 0; j < M; ++j) {
          const scalar_t* __restrict__ s = p[j] + b * src[j].stride(0) + t * src[j].stride(1);
          if (j == 0) for (int64_t k = 0; k < D; ++k) row[k] = s[k] * w[0];
          else for (int64_t k = 0; k < D; ++k) row[k] = row[k] + s[k] * w[j];
        }
      }
  });
  return out;
}

std::vector<torch::Tensor> backward(torch::Tensor grad, torch::Tensor alpha, std::vector<torch::Tensor> src) {
  const int64_t B = grad.size(0), T = grad.size(1), D = grad.size(2), M = alpha.size(2);
  std::vector<torch::Tensor> outs{torch::empty_like(alpha)};
  for (int64_t j = 0; j < M; ++j) outs.push_back(torch::empty_like(grad));
  AT_DISPATCH_FLOATING_TYPES(alpha.scalar_type(), "depth_sum_backward", [&] {
    std::vector<const scalar_t*> p;
    std::vector<scalar_t*> q;
    for (int64_t j = 0; j < M; ++j) { p.push_back(src[j].data_ptr<scalar_t>()); q.push_back(outs[j + 1].data_ptr<scalar_t>()); }
    const scalar_t* g = grad.data_ptr<scalar_t>();
    const scalar_t* al = alpha.data_ptr<scalar_t>();
    scalar_t* ga = outs[0].data_ptr<scalar_t>();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b) {
        const scalar_t* __restrict__ gr = g + b * grad.stride(0) + t * grad.stride(1);
        const int64_t a_at = b * alpha.stride(0) + t * alpha.stride(1);
        for (int64_t j = 0; j < M; ++j) {
          const scalar_t* __restrict__ s = p[j] + b * src[j].stride(0) + t * src[j].stride(1);
          scalar_t* __restrict__ gs = q[j] + b * outs[j + 1].stride(0) + t * outs[j + 1].stride(1);
          const scalar_t w = al[a_at + j];
          scalar_t dot = 0;
          for (int64_t k = 0; k < D; ++k) dot += gr[k] * s[k];
          for (int64_t k = 0; k < D; ++k) gs[k] = gr[k] * w;
          ga[a_at + j] = dot;
        }
      }
  });
  return outs;
}
"""


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    ext = load_inline("depth_sum_cpp_probe", cpp_sources=KERNEL, functions=["forward", "backward"],
                      extra_cflags=["-O3", "-march=native", "-ffast-math"])
    print(f"kernel compiled in {time.perf_counter() - start:.1f} s")
    keep_freed_memory()                                    # as the fuxictr-deres commands run

    class KernelSum(torch.autograd.Function):
        @staticmethod
        def forward(ctx, alpha, *sources):
            ctx.save_for_backward(alpha, *sources)
            return ext.forward(alpha, list(sources))

        @staticmethod
        def backward(ctx, grad):
            alpha, *sources = ctx.saved_tensors
            return tuple(ext.backward(grad.contiguous(), alpha, sources))

    batch, tokens, d = 1024, 8, 32
    counts = [1, 2, 2, 3, 3, 4, 4, 5, 5]
    gen = torch.Generator().manual_seed(0)
    sources = [torch.randn(tokens, batch, d, generator=gen).transpose(0, 1).requires_grad_() for _ in range(5)]
    alpha = torch.randn(batch, tokens, 5, generator=gen, requires_grad=True)
    grad = torch.randn(batch, tokens, d, generator=gen)
    ref, new = depth_weighted_sum(alpha, sources), KernelSum.apply(alpha, *sources)
    diffs = [(x - y).abs().max().item() for x, y in zip(torch.autograd.grad(ref, [alpha] + sources, grad),
                                                        torch.autograd.grad(new, [alpha] + sources, grad))]
    print(f"kernel vs torch: forward max |diff| {(ref - new).abs().max().item():.1e}, gradients {max(diffs):.1e}")

    def reads(weighted_sum):
        def step():
            total = 0
            for m in counts:
                weights = torch.randn(batch, tokens, m, generator=gen, requires_grad=True)
                total = total + weighted_sum(weights, sources[:m]).sum()
            total.backward()
        return step

    res = step_time_ratio(reads(lambda w, s: KernelSum.apply(w, *s)), reads(depth_weighted_sum), pairs=15, warmup=3)
    print(f"{sum(counts)} (read, source) pairs, forward + backward: torch {res['time_b'] * 1e3:.2f} ms, kernel "
          f"{res['time_a'] * 1e3:.2f} ms, kernel / torch {res['ratio']:.3f} (median of 15 interleaved)")


if __name__ == "__main__":
    main()
