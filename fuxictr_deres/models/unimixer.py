"""UniMixer and UniMixer-Lite (Ha et al., Kuaishou, arXiv 2604.00590): Sinkhorn-constrained local and global token
mixing (layers.uni_mixing) and a per-token SwiGLU FFN as separate units, wired by SiameseNorm (``residual:
siamese``), with the Sinkhorn temperature annealed linearly from tau_start (1.0) to tau_end (0.05) over training."""

from typing import List, Optional, Tuple

import torch
from torch import nn

from .. import flops_rules
from ..layers.swiglu import TokenSwiGLU
from ..layers.uni_mixing import UniMixing
from .token_ctr import TokenCTR


class SwiGLUUnit(nn.Module):
    """o = pSwiGLU(RMSNorm(h)) per token (the RMSNorm only when ``norm``)."""

    def __init__(self, num_tokens: int, d_model: int, ffn_ratio: float, token_specific: bool = True,
                 norm: bool = True):
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=1e-6) if norm else nn.Identity()
        self.ffn = TokenSwiGLU(num_tokens, d_model, int(round(ffn_ratio * d_model)), token_specific)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.norm(h))

    def flops(self, num_tokens: int) -> int:
        norm = flops_rules.rmsnorm(num_tokens, self.ffn.gate.d_in) if isinstance(self.norm, nn.RMSNorm) else 0
        return norm + self.ffn.flops(num_tokens)


class UniMixer(TokenCTR):
    """L x (UniMixing, SwiGLU) units on the shared backbone; ``residual: siamese`` by default.

    Options: ``block_size`` b (default d / T, so n = T^2 blocks and the TokenMixer permutation is expressible),
    ``sinkhorn_iters`` (20), ``lite`` with ``num_bases`` and ``global_rank`` (UniMixer-Lite), ``mixing_init``
    (``tokenmixer`` | ``identity`` | ``uniform``) with ``init_scale`` (0.5; see layers.uni_mixing),
    ``mixing_lr_multiplier`` (10: the mixing logits' learning rate is lr * m, like ``residual_lr_multiplier``
    for rule parameters), ``tau_start``/``tau_end``, and
    ``tau_anneal_epochs`` (default: the ``epochs`` given to ``fit``; early stopping usually ends training long
    before a large epoch budget, so configs set it). ``unit_norm`` (default: off under SiameseNorm, whose unit
    input is already normalised, on under any other rule, whose units need their own pre-norm).
    """

    default_residual = "siamese"

    def __init__(self, feature_map, model_id: str = "UniMixer", residual: Optional[str] = None,
                 final_norm: bool = False, unit_norm: Optional[bool] = None, lite: bool = False,
                 tau_start: float = 1.0, tau_end: float = 0.05, tau_anneal_epochs: Optional[float] = None,
                 mixing_lr_multiplier: float = 10.0, **kwargs):
        if not isinstance(mixing_lr_multiplier, (int, float)) or not mixing_lr_multiplier > 0:
            raise ValueError(f"mixing_lr_multiplier={mixing_lr_multiplier!r}: expected a positive number")
        # read by compile(), which TokenCTR.__init__ calls: set before nn.Module.__init__ (a plain float is allowed)
        self.mixing_lr_multiplier = float(mixing_lr_multiplier)
        if unit_norm is None:
            unit_norm = (residual or self.default_residual) != "siamese"
        super().__init__(feature_map, model_id=model_id, residual=residual, final_norm=final_norm,
                         unit_norm=unit_norm, lite=lite, **kwargs)
        self.tau_start, self.tau_end, self.tau_anneal_epochs = float(tau_start), float(tau_end), tau_anneal_epochs
        self._anneal_steps, self._anneal_step = 0, 0
        self.set_temperature(self.tau_start)

    def build_units(self, num_tokens: int, d_model: int, num_layers: int, ffn_ratio: float, token_specific: bool,
                    unit_norm: bool = False, lite: bool = False, block_size: Optional[int] = None,
                    sinkhorn_iters: int = 20, num_bases: int = 4, global_rank: int = 4,
                    init_scale: float = 0.1, mixing_init: Optional[str] = None,
                    **kwargs) -> Tuple[List[nn.Module], int, int]:
        units = []
        for _ in range(num_layers):
            units.append(UniMixing(num_tokens, d_model, block_size, sinkhorn_iters, lite, num_bases, global_rank,
                                   init_scale, mixing_init, norm=unit_norm))
            units.append(SwiGLUUnit(num_tokens, d_model, ffn_ratio, token_specific, norm=unit_norm))
        return units, 2, num_tokens

    def multiplied_parameter_groups(self):
        """TokenCTR's groups plus the mixing logits at lr * ``mixing_lr_multiplier``."""
        mixing = [p for unit in self.units if isinstance(unit, UniMixing) for p in unit.mixing_parameters()]
        return super().multiplied_parameter_groups() + [("mixing", mixing, self.mixing_lr_multiplier)]

    def set_temperature(self, tau: float) -> None:
        for unit in self.units:
            if isinstance(unit, UniMixing):
                unit.tau.fill_(tau)

    @property
    def temperature(self) -> float:
        return float(self.units[0].tau)

    # FuxiCTR's fit has no epoch or step callback, so the annealing schedule hooks fit (to learn the total number
    # of steps) and train_step (to set tau from the progress before each step).
    def fit(self, data_generator, epochs: int = 1, validation_data=None, max_gradient_norm: float = 10.,
            **kwargs):
        anneal_epochs = self.tau_anneal_epochs if self.tau_anneal_epochs is not None else epochs
        self._anneal_steps = max(1, int(round(anneal_epochs * len(data_generator))))
        self._anneal_step = 0
        return super().fit(data_generator, epochs=epochs, validation_data=validation_data,
                           max_gradient_norm=max_gradient_norm, **kwargs)

    def train_step(self, batch_data):
        if self._anneal_steps:
            progress = min(1.0, self._anneal_step / max(1, self._anneal_steps - 1))
            self.set_temperature(self.tau_start + (self.tau_end - self.tau_start) * progress)
            self._anneal_step += 1
        return super().train_step(batch_data)


class UniMixerLite(UniMixer):
    """UniMixer-Lite: local mixing from shared bases, low-rank global mixing (``lite: True``)."""

    def __init__(self, feature_map, model_id: str = "UniMixerLite", lite: bool = True, **kwargs):
        super().__init__(feature_map, model_id=model_id, lite=lite, **kwargs)
