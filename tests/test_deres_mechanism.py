"""The mechanism DeRes claims (arXiv 2606.07980, Pointwise AttnRes), checked on the rule alone.

Its final read h = c (g * y + (1 - g) * a), a = sum_j SiLU(z_j) b_j over the blocks b_0 = X0, b_1, ..., b_N can
*recall* X0 alone and *forget* a stale block (a negative weight), which the Pre-Norm identity stream y = sum_j b_j
cannot do at all, and which softmax depth scores cannot do exactly: their weights are positive and sum to one per
token, so with N >= 3 blocks neither target lies in their reach (recall needs weight 1/c on X0 and 0 elsewhere;
forgetting the last block needs 1/c on each of the others, N/c > 1).

The units here return fixed tensors whatever they read, so the blocks are fixed and only the rule's own parameters
(queries, per-source biases, gates) are fitted to the target. A rule that cannot reach it would be the
implementation defect the positive control (docs/results/control) asks about; these tests say the routing can
express and learn both operations, so the control's null result is about what end-to-end training makes of it.
"""

import pytest
import torch

from fuxictr_deres.residuals import build_residual_rule

BATCH, TOKENS, D_MODEL, LAYERS = 16, 4, 8, 3
UNITS = 2 * LAYERS                      # attention + FFN per layer; N = min(8, L) = 3 blocks of 2 units


def fixed_stack():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(BATCH, TOKENS, D_MODEL, generator=gen)
    outputs = [torch.randn(BATCH, TOKENS, D_MODEL, generator=gen) for _ in range(UNITS)]
    return x0, outputs


def targets(x0, outputs, block_units):
    blocks = [sum(outputs[i:i + block_units]) for i in range(0, UNITS, block_units)]
    identity = x0 + sum(outputs)
    return identity, {"recall X0": x0, "forget the last block": identity - blocks[-1]}


def relative_error(h, target):
    return ((h - target) ** 2).mean() / (target ** 2).mean()


def fit_rule(residual_params: dict, target: torch.Tensor, x0, outputs, steps: int = 120) -> float:
    """Fit the rule's parameters (Adam) so that its output after the fixed units matches ``target``."""
    torch.manual_seed(0)
    rule = build_residual_rule("deres", residual_params, UNITS, D_MODEL, TOKENS, 2)
    units = [lambda h, out=out: out for out in outputs]
    optimizer = torch.optim.Adam(rule.parameters(), lr=0.1)
    for _ in range(steps):
        loss = relative_error(rule.run(x0, units), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return relative_error(rule.run(x0, units), target).item()


@pytest.mark.parametrize("task", ["recall X0", "forget the last block"])
def test_silu_reads_recall_and_forget_where_prenorm_and_softmax_cannot(task):
    x0, outputs = fixed_stack()
    block_units = build_residual_rule("deres", {}, UNITS, D_MODEL, TOKENS, 2).block_units
    identity, tasks = targets(x0, outputs, block_units)
    target = tasks[task]
    prenorm = relative_error(identity, target).item()        # the Pre-Norm model's output, whatever it learns
    silu = fit_rule({"score_fn": "silu"}, target, x0, outputs)
    softmax = fit_rule({"score_fn": "softmax"}, target, x0, outputs)
    assert prenorm > 0.2
    assert silu < 1e-3, f"DeRes' SiLU read did not learn to {task}: relative error {silu:.2e}"
    assert softmax > 0.02, f"softmax scores reached a target outside their reach: {softmax:.2e}"
    assert silu < softmax / 30 and silu < prenorm / 200

