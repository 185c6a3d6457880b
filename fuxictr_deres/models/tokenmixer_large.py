"""TokenMixer-Large (Jiang et al., arXiv 2602.06563): Groups + global tokens, Mix/Revert blocks with per-token
SwiGLUs in the paper's Pre-Norm form, inter-residuals and auxiliary losses from lower layers.

    Hm  = Mix(X)                                 H mixed tokens of width T*d/H (H need not equal T)
    Hm' = Hm + pSwiGLU_1(RMSNorm(Hm))            in-layout add: inside the unit
    X'  = X + pSwiGLU_2(RMSNorm(Revert(Hm')))    block-level residual: the swappable rule (prenorm by default)
    X^(l+s) += X^(l) every s blocks, never into the last block

Params per block about 3n T^2 d^2 / H + 3n T d^2 (n = ffn_ratio).
"""

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import flops_rules
from ..layers.mixing import TokenMixing
from ..layers.swiglu import TokenSwiGLU
from .token_ctr import TokenCTR


class TokenMixerLargeBlock(nn.Module):
    """f(X) = pSwiGLU_2(RMSNorm(Revert(Hm + pSwiGLU_1(RMSNorm(Hm))))), Hm = Mix(X); biases removed."""

    def __init__(self, num_tokens: int, d_model: int, mix_heads: int, ffn_ratio: float,
                 down_init_scale: float = 0.01, eps: float = 1e-6):
        super().__init__()
        self.mixing = TokenMixing(num_tokens, d_model, mix_heads)
        width = self.mixing.mixed_width
        self.mixed_norm = nn.RMSNorm(width, eps=eps)
        self.mixed_ffn = TokenSwiGLU(mix_heads, width, int(round(ffn_ratio * width)),
                                     down_init_scale=down_init_scale)
        self.token_norm = nn.RMSNorm(d_model, eps=eps)
        self.token_ffn = TokenSwiGLU(num_tokens, d_model, int(round(ffn_ratio * d_model)),
                                     down_init_scale=down_init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hm = self.mixing(x)
        hm = hm + self.mixed_ffn(self.mixed_norm(hm))
        return self.token_ffn(self.token_norm(self.mixing.revert(hm)))

    def flops(self, num_tokens: int) -> int:
        h, w, d = self.mixing.num_heads, self.mixing.mixed_width, self.mixing.d_model
        return (flops_rules.rmsnorm(h, w) + self.mixed_ffn.flops(h) + flops_rules.elementwise(h, w)
                + flops_rules.rmsnorm(num_tokens, d) + self.token_ffn.flops(num_tokens))


class TokenMixerLarge(TokenCTR):
    """TokenMixer-Large on the shared token backbone (one unit per block; ``residual: prenorm`` by default).

    Options [ours where the paper is silent]: ``mix_heads`` H (default T); ``inter_residual_every`` s (2; 0 or
    None turns it off); ``aux_loss_weight`` (0.1; 0 turns it off) times the mean loss of the shared
    readout and head applied to the outputs of ``aux_loss_layers`` (1-based block indices, default every block but
    the last); ``down_init_scale`` (0.01). With a rule other than prenorm, the inter-residual adds the input that
    block l + 1 read (for prenorm that is X^(l)).
    """

    default_residual = "prenorm"

    def __init__(self, feature_map, model_id: str = "TokenMixerLarge", tokenizer: str = "groups",
                 mix_heads: Optional[int] = None, inter_residual_every: Optional[int] = 2,
                 aux_loss_weight: float = 0.1, aux_loss_layers: Optional[Sequence[int]] = None,
                 down_init_scale: float = 0.01, **kwargs):
        num_layers = kwargs.get("num_layers", 4)
        if inter_residual_every not in (None, 0) and inter_residual_every < 1:
            raise ValueError(f"inter_residual_every={inter_residual_every}: expected a positive integer or 0")
        layers = list(range(1, num_layers)) if aux_loss_layers is None else list(aux_loss_layers)
        if any(not 1 <= l < num_layers for l in layers):
            raise ValueError(f"aux_loss_layers={aux_loss_layers}: expected block indices in 1..{num_layers - 1} "
                             f"(lower blocks; num_layers={num_layers})")
        super().__init__(feature_map, model_id=model_id, tokenizer=tokenizer, mix_heads=mix_heads,
                         down_init_scale=down_init_scale, **kwargs)
        self.inter_residual_every = inter_residual_every or 0
        self.aux_loss_weight, self.aux_loss_layers = float(aux_loss_weight), sorted(set(layers))

    def build_units(self, num_tokens: int, d_model: int, num_layers: int, ffn_ratio: float,
                    mix_heads: Optional[int] = None, down_init_scale: float = 0.01,
                    **kwargs) -> Tuple[List[nn.Module], int, int]:
        heads = mix_heads or num_tokens
        return ([TokenMixerLargeBlock(num_tokens, d_model, heads, ffn_ratio, down_init_scale)
                 for _ in range(num_layers)], 1, num_tokens)

    def _run(self, inputs: dict) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The rule's loop (ResidualRule.run) plus the inter-residual; also returns the lower blocks' outputs
        that feed auxiliary losses (only while training with a positive weight)."""
        tokens = self.tokenizer(self.embedding_layer(self.get_inputs(inputs)))
        rule, units, s = self.rule, list(self.units), self.inter_residual_every
        want_aux = self.training and self.aux_loss_weight > 0
        state, seen, lower = rule.init(tokens), [], []
        for u, unit in enumerate(units):
            h = rule.unit_input(state, u)
            seen.append(h)
            if want_aux and u in self.aux_loss_layers:
                lower.append(h)                               # h_u = output of block u (1-based) under prenorm
            out = unit(h)
            if s and (u + 1) % s == 0 and u < len(units) - 1:
                out = out + seen[u + 1 - s]
            state = rule.update(state, u, out)
        return rule.readout(state), lower

    def backbone(self, inputs: dict) -> torch.Tensor:
        return self._run(inputs)[0]

    def forward(self, inputs: dict) -> dict:
        final, lower = self._run(inputs)
        logit = self.head(self.readout(self.final_norm(final)))
        out = {"y_pred": self.output_activation(logit), "logit": logit}
        if lower:
            out["aux_logits"] = [self.head(self.readout(self.final_norm(h))) for h in lower]
        return out

    def add_loss(self, return_dict: dict, y_true: torch.Tensor) -> torch.Tensor:
        """Task loss + aux_loss_weight * mean over the lower blocks' losses (deep supervision)."""
        loss = super().add_loss(return_dict, y_true)
        aux = return_dict.get("aux_logits")
        if aux:
            aux_losses = [self.loss_fn(self.output_activation(l), y_true, reduction="mean") for l in aux]
            loss = loss + self.aux_loss_weight * torch.stack(aux_losses).mean()
        return loss
