"""Forward FLOPs per sample of a model, counted two independent ways (specs/measurement.md, flops_rules.py).

analytic  per top-level part (embedding, tokenizer, units, rule, final_norm, readout, head, ...): a module with a
          ``flops(num_tokens)`` method reports its own count (num_tokens = the token count it received in one
          forward); a residual rule reports ``rule.flops(T0)`` over the whole depth; any other module is the sum of
          its children plus a formula for known leaves (Linear 2*m*k*n + bias, RMSNorm, LayerNorm, activations,
          mean readout; categorical embedding look-ups 0) and for the own work of a few FuxiCTR modules (CrossNetV2,
          FinalMLP's FeatureSelection and InteractionAggregation). Modules with parameters that none of this covers
          are listed in ``notes``.
counted   ``torch.utils.flop_counter.FlopCounterMode`` over one forward, divided by the batch size. It counts
          matmul-family ops only. On CPU it does not count ``F.scaled_dot_product_attention`` (the CPU kernel
          ``_scaled_dot_product_flash_attention_for_cpu`` has no formula in torch), so one is registered here
          (``sdpa_flop_count``: 2 b h s_q s_k d for Q K^T plus the same for A V) and both counts include attention.

backbone  = units + rule (analytic); the counted backbone is the whole count minus the non-backbone parts.
overhead  of a rule = (model - its Pre-Norm twin) / Pre-Norm twin, same T, d, L, k (``residual: prenorm``).
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from . import flops_rules
from .residuals.base import ResidualRule

#: top-level parts that are not the backbone (units + rule)
NON_BACKBONE = ("embedding_layer", "tokenizer", "final_norm", "readout", "head")

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.PReLU, nn.Softmax,
               nn.SELU, nn.Mish, nn.Hardswish)
ZERO_COST = (nn.Dropout, nn.Identity, nn.Embedding, nn.EmbeddingBag, nn.Flatten)


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def counter_mode() -> FlopCounterMode:
    """FlopCounterMode with the CPU SDPA kernels counted (torch has no formula for them)."""
    aten = torch.ops.aten
    mapping = {}
    for name, fn in (("_scaled_dot_product_flash_attention_for_cpu", _cpu_sdpa),
                     ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_sdpa_backward)):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = fn
    return FlopCounterMode(display=False, custom_mapping=mapping)


@dataclass
class FlopReport:
    """Forward FLOPs per sample of one model: analytic per part and FlopCounterMode's count."""

    model: str
    analytic_parts: Dict[str, int]
    counted_parts: Dict[str, float]
    counted_total: float
    has_backbone: bool
    notes: List[str] = field(default_factory=list)

    @property
    def analytic_total(self) -> int:
        return sum(self.analytic_parts.values())

    @property
    def analytic_backbone(self) -> Optional[int]:
        if not self.has_backbone:
            return None
        return sum(v for k, v in self.analytic_parts.items() if k in ("units", "rule"))

    @property
    def counted_backbone(self) -> Optional[float]:
        if not self.has_backbone:
            return None
        return self.counted_total - sum(v for k, v in self.counted_parts.items() if k in NON_BACKBONE)

    def as_dict(self) -> dict:
        return {"model": self.model, "analytic_total": self.analytic_total,
                "analytic_backbone": self.analytic_backbone, "counted_total": self.counted_total,
                "counted_backbone": self.counted_backbone, "analytic_parts": dict(self.analytic_parts),
                "counted_parts": dict(self.counted_parts), "notes": list(self.notes)}


def _shapes(args) -> List[Tuple[int, ...]]:
    return [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]


def _tokens(shape: Tuple[int, ...]) -> int:
    """Token count of a (B, T, d) input; 1 for a flat (B, d) input."""
    return shape[-2] if len(shape) >= 3 else 1


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _leaf_flops(module: nn.Module, ins: List[tuple], out: Optional[tuple]) -> Optional[int]:
    """FLOPs of one call of a known leaf module, over the whole batch; None if the module is not a known leaf."""
    if isinstance(module, nn.Linear):
        rows = _numel(ins[0]) // module.in_features
        return flops_rules.linear(rows, module.in_features, module.out_features, module.bias is not None)
    if isinstance(module, nn.RMSNorm):
        d = _numel(module.normalized_shape)
        return flops_rules.rmsnorm(_numel(ins[0]) // d, d, module.weight is not None)
    if isinstance(module, nn.LayerNorm):
        d = _numel(module.normalized_shape)
        return flops_rules.layernorm(_numel(ins[0]) // d, d, module.elementwise_affine)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return 2 * _numel(ins[0])                                       # eval: one scale and one shift
    if isinstance(module, ACTIVATIONS):
        return _numel(out if out is not None else ins[0])
    if isinstance(module, ZERO_COST):
        return 0
    if type(module).__name__ == "Readout":
        return _numel(ins[0]) if module.mode == "mean" else 0           # a reduction over tokens
    return None


def _is_known_leaf(module: nn.Module) -> bool:
    return (isinstance(module, (nn.Linear, nn.RMSNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d) + ACTIVATIONS
                       + ZERO_COST) or type(module).__name__ == "Readout")


def _own_flops(module: nn.Module, ins: List[tuple], out: Optional[tuple]) -> Optional[int]:
    """Work a few FuxiCTR modules do in their forward besides their children, over the whole batch."""
    name = type(module).__name__
    if name == "TaskTokenTokenizer":                                    # concatenates a learned token
        return 0
    if name == "CrossNetV2":                                            # x_i + x_0 * (W x_i + b)
        return 2 * module.num_layers * _numel(ins[0])
    if name == "FeatureSelection":                                      # gate * 2, then * flat_emb, two gates
        return 4 * _numel(ins[-1])
    if name == "InteractionAggregation":
        rows = _numel(ins[0]) // (module.num_heads * module.head_x_dim)
        h, x, y, o = module.num_heads, module.head_x_dim, module.head_y_dim, module.output_dim
        return rows * (h * flops_rules.matmul(1, x, y * o) + h * flops_rules.matmul(o, y, 1) + h * o + 2 * o)
    return None


def _has_flops(module: nn.Module) -> bool:
    return callable(getattr(module, "flops", None))


def analytic_parts(model: nn.Module, batch: dict) -> Tuple[Dict[str, int], List[str]]:
    """Analytic forward FLOPs per sample of each top-level child of ``model`` (see the module docstring), from
    one forward on ``batch`` that records what every module received."""
    calls: Dict[nn.Module, List[Tuple[List[tuple], Optional[tuple]]]] = {}

    def hook(module, args, output):
        out = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        calls.setdefault(module, []).append((_shapes(args), out))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    batch_size = len(next(iter(batch.values())))
    notes: List[str] = []
    x0_tokens = None
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None and calls.get(tokenizer) and calls[tokenizer][0][1] is not None:
        x0_tokens = calls[tokenizer][0][1][1]
    x0_tokens = x0_tokens or getattr(model, "num_tokens", None)

    def count(module: nn.Module, path: str) -> float:
        if isinstance(module, ResidualRule) and _has_flops(module):
            return module.flops(x0_tokens)
        seen = calls.get(module, [])
        if _has_flops(module) and not isinstance(module, ResidualRule):
            return sum(module.flops(_tokens(ins[0]) if ins else 1) for ins, _ in seen)
        if _is_known_leaf(module):
            return sum(_leaf_flops(module, ins, out) for ins, out in seen) / batch_size
        if isinstance(module, ResidualRule):
            notes.append(f"{path}: residual rule {type(module).__name__} has no flops method; only the "
                         f"forward calls of its submodules are counted")
        total = sum(count(child, f"{path}.{name}") for name, child in module.named_children())
        own = [_own_flops(module, ins, out) for ins, out in seen]
        if own and own[0] is not None:
            total += sum(own) / batch_size
        elif seen and any(True for _ in module.parameters(recurse=False)):
            notes.append(f"{path} ({type(module).__name__}): own parameters used outside child modules are not "
                         f"in the analytic count")
        return total

    parts = {name: int(round(count(child, name))) for name, child in model.named_children()}
    return parts, notes


def counted_parts(model: nn.Module, batch: dict) -> Tuple[float, Dict[str, float]]:
    """FlopCounterMode's forward count per sample: (whole model, per top-level child)."""
    batch_size = len(next(iter(batch.values())))
    was_training = model.training
    model.eval()
    try:
        with counter_mode() as mode, torch.no_grad():
            model(batch)
    finally:
        model.train(was_training)
    counts = {k: sum(v.values()) for k, v in mode.get_flop_counts().items()}
    prefix = type(model).__name__
    parts = {name: counts.get(f"{prefix}.{name}", 0) / batch_size for name, _ in model.named_children()}
    return mode.get_total_flops() / batch_size, parts


def flop_report(model: nn.Module, batch: dict) -> FlopReport:
    """Both counts for ``model`` on ``batch`` (a few dozen rows are enough: counts are per sample)."""
    parts, notes = analytic_parts(model, batch)
    total, counted = counted_parts(model, batch)
    has_backbone = hasattr(model, "units") and "units" in parts
    if not has_backbone:
        notes.append(f"{type(model).__name__} has no units/rule backbone: only whole-model counts")
    return FlopReport(type(model).__name__, parts, counted, total, has_backbone, notes)


def rule_overhead(model_report: FlopReport, prenorm_report: FlopReport) -> float:
    """(model - Pre-Norm twin) / Pre-Norm twin, whole-model analytic FLOPs."""
    return (model_report.analytic_total - prenorm_report.analytic_total) / prenorm_report.analytic_total


def prenorm_twin(params: dict) -> dict:
    """The same config with the Pre-Norm rule (``residual: prenorm``, no residual_params)."""
    twin = dict(params)
    twin["residual"] = "prenorm"
    twin.pop("residual_params", None)
    return twin


def expid_flops(params: dict, feature_map, batch_size: int = 64, counted: bool = True) -> FlopReport:
    """The report of the model ``params`` describes, built on ``feature_map`` (counted=False skips the counter)."""
    from .bench.synthetic import build_for_measurement, synthetic_batch
    model = build_for_measurement(params, feature_map)
    batch = synthetic_batch(feature_map, batch_size)
    if counted:
        return flop_report(model, batch)
    parts, notes = analytic_parts(model, batch)
    return FlopReport(type(model).__name__, parts, {}, float("nan"), hasattr(model, "units"), notes)


def has_rule(params: dict, feature_map) -> bool:
    """Whether the model of ``params`` wires its units with a residual rule (so a Pre-Norm twin exists)."""
    from .models import get_model_class
    from .models.token_ctr import TokenCTR
    return issubclass(get_model_class(params["model"]), TokenCTR)


def overhead_grid(params: dict, feature_map, widths=(32, 64, 128), depths=(4, 8, 16)) -> List[dict]:
    """Analytic FLOPs of ``params`` and of its Pre-Norm twin for every d_model x num_layers: rows with the
    whole-model and backbone overheads."""
    rows = []
    for d in widths:
        for depth in depths:
            sized = dict(params, d_model=d, num_layers=depth)
            rep = expid_flops(sized, feature_map, batch_size=2, counted=False)
            base = expid_flops(prenorm_twin(sized), feature_map, batch_size=2, counted=False)
            rows.append({"d_model": d, "num_layers": depth, "num_tokens": params.get("num_tokens"),
                         "flops": rep.analytic_total, "prenorm_flops": base.analytic_total,
                         "overhead": rule_overhead(rep, base),
                         "backbone_overhead": (rep.analytic_backbone - base.analytic_backbone)
                         / base.analytic_backbone})
    return rows
