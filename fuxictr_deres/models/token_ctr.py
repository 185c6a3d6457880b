"""TokenCTR: the one token backbone every Transformer-style model here shares (specs/architecture.md).

    fields --FeatureEmbedding--> e (B, F, E) --tokenizer--> X0 (B, T, d)
           --units wired by a residual rule--> X_L --final RMSNorm--> readout --> MLP head --> sigmoid

Models differ only in configuration (residual rule, tokenizer, sizes) and, for other backbones, in the units
``build_units`` returns.
"""

import contextlib
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import get_loss, get_optimizer, get_regularizer

from ..layers import Readout, TokenAttention, TokenFFN, build_tokenizer
from ..residuals import build_residual_rule
from .checkpoint_format import FORMAT_KEY, check_checkpoint_format, format_buffer

PRECISIONS = ("fp32", "bf16")


def to_token_major(x: torch.Tensor) -> torch.Tensor:
    """The same (B, T, d) values stored token-major, i.e. a (B, T, d) view of a contiguous (T, B, d) tensor: the
    layout in which TokenAttention/TokenFFN run their token-specific products without a copy (docs/speed.md)."""
    return x.transpose(0, 1).contiguous().transpose(0, 1)


def pyramid_token_counts(pyramid_tokens: Optional[List[int]], num_tokens: int, num_layers: int) -> List[int]:
    """Tokens kept by each layer: ``pyramid_tokens`` checked (L non-increasing counts in 1..T), or T throughout."""
    if pyramid_tokens is None:
        return [num_tokens] * num_layers
    sizes = list(pyramid_tokens)
    if (len(sizes) != num_layers or any(not isinstance(n, int) or n < 1 for n in sizes)
            or any(a < b for a, b in zip([num_tokens] + sizes, sizes))):
        raise ValueError(f"pyramid_tokens={pyramid_tokens}: expected num_layers={num_layers} non-increasing "
                         f"token counts between 1 and num_tokens={num_tokens}")
    return sizes


class TokenCTR(BaseModel):
    """FuxiCTR model over tokens: a Pre-Norm Transformer backbone (attention and FFN are separate units) whose
    residual connections are a swappable rule (``residual: prenorm | deres | ...``).

    Speed options (docs/speed.md), all off by default: ``precision: bf16`` runs the forward under bfloat16 autocast
    and the loss from float32 logits; ``compile: true`` wraps the unit loop in ``torch.compile`` (backend
    ``compile_backend``); ``attention_impl`` picks the attention kernel (``auto | explicit | sdpa``).
    """

    default_residual = "prenorm"

    def __init__(self,
                 feature_map,
                 model_id: str = "TokenCTR",
                 gpu: int = -1,
                 learning_rate: float = 1e-3,
                 embedding_dim: int = 16,
                 embedding_initializer: str = "partial(nn.init.normal_, std=1e-4)",
                 tokenizer: str = "autosplit",
                 tokenizer_params: Optional[dict] = None,
                 num_tokens: int = 16,
                 d_model: int = 64,
                 num_layers: int = 4,
                 num_heads: int = 4,
                 ffn_ratio: float = 4,
                 ffn_activation: str = "gelu",
                 token_specific: bool = True,
                 causal: bool = False,
                 attention_dropout: float = 0.0,
                 net_dropout: float = 0.0,
                 residual: Optional[str] = None,
                 residual_params: Optional[dict] = None,
                 final_norm: bool = True,
                 readout: str = "mean",
                 head_hidden_units: List[int] = (64,),
                 head_activations: str = "ReLU",
                 attention_impl: str = "auto",
                 precision: str = "fp32",
                 compile: bool = False,
                 compile_backend: str = "inductor",
                 embedding_regularizer=None,
                 net_regularizer=None,
                 residual_lr_multiplier: float = 10.0,
                 **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu,
                         embedding_regularizer=embedding_regularizer, net_regularizer=net_regularizer, **kwargs)
        for key, value in (("num_tokens", num_tokens), ("d_model", d_model), ("num_layers", num_layers),
                           ("num_heads", num_heads), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: expected a positive integer")
        if not isinstance(residual_lr_multiplier, (int, float)) or not residual_lr_multiplier > 0:
            raise ValueError(f"residual_lr_multiplier={residual_lr_multiplier!r}: expected a positive number")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: expected one of {list(PRECISIONS)}")
        if precision != "fp32" and type(self).forward is not TokenCTR.forward:
            raise ValueError(f"precision={precision!r} is applied by TokenCTR.forward, which {type(self).__name__} "
                             f"overrides: only fp32 is supported for this model")
        if precision != "fp32" and kwargs.get("loss") not in ("bce", "binary_crossentropy", "binary_cross_entropy"):
            raise ValueError(f"precision={precision!r} computes the loss from logits and supports only "
                             f"loss: binary_crossentropy, got loss={kwargs.get('loss')!r}")
        if not isinstance(compile, bool):
            raise ValueError(f"compile={compile!r}: expected true or false")
        self.num_tokens, self.d_model, self.num_layers = num_tokens, d_model, num_layers
        self.residual_lr_multiplier = float(residual_lr_multiplier)
        self.precision = precision
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim,
                                                embedding_initializer=embedding_initializer)
        num_fields = feature_map.get_num_fields()
        self.tokenizer = self.build_tokenizer(tokenizer, num_fields, embedding_dim, num_tokens, d_model,
                                              tokenizer_params or {}, **kwargs)
        units, units_per_layer, final_tokens = self.build_units(
            num_tokens=num_tokens, d_model=d_model, num_layers=num_layers, num_heads=num_heads,
            ffn_ratio=ffn_ratio, ffn_activation=ffn_activation, token_specific=token_specific, causal=causal,
            attention_dropout=attention_dropout, net_dropout=net_dropout, attention_impl=attention_impl, **kwargs)
        self.units = nn.ModuleList(units)
        # Token-major states when every unit is one of the token-major units (other backbones reshape (B, T, d)).
        self.token_major = all(isinstance(unit, (TokenAttention, TokenFFN)) for unit in units)
        self.rule = build_residual_rule(residual or self.default_residual, residual_params, len(self.units),
                                        d_model, num_tokens, units_per_layer)
        self.final_norm = nn.RMSNorm(d_model, eps=1e-6) if final_norm else nn.Identity()
        self.readout = Readout(readout, final_tokens, d_model)
        self.head = MLP_Block(input_dim=self.readout.output_dim, hidden_units=list(head_hidden_units),
                              hidden_activations=head_activations, output_dim=1, dropout_rates=net_dropout)
        self.register_buffer(FORMAT_KEY, format_buffer())          # checked by load_weights
        # torch.compile of the unit loop only: the embedding dict and FuxiCTR's training loop stay eager.
        if compile:
            self.run_units = torch.compile(self.run_units, backend=compile_backend)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def compile(self, optimizer, loss, lr):
        """FuxiCTR's compile with two parameter groups: everything at ``lr``, the residual rule's parameters
        (gates, pseudo-queries, depth biases, mixing scalars) at ``lr * residual_lr_multiplier``.

        The rule's parameters are few and start at a point (zero query, g = 1/2) where their gradients are small
        next to the backbone's, so at the backbone's rate they barely move (issue 12: ||a||/||y|| stays near 0.01
        at lr, 0.2-0.7 at 10 lr within 6 epochs on Frappe). FuxiCTR's lr_decay scales every group, so
        reduce-on-plateau keeps the ratio (until min_lr). The base group comes first: FuxiCTR and the training
        monitor read param_groups[0] as "the" learning rate.
        """
        extra = [(name, params, m) for name, params, m in self.multiplied_parameter_groups() if params]
        taken = {id(p) for _, params, _ in extra for p in params}
        groups = [{"params": [p for p in self.parameters() if id(p) not in taken], "lr": lr, "name": "base"}]
        groups += [{"params": params, "lr": lr * m, "name": name} for name, params, m in extra]
        self.optimizer = get_optimizer(optimizer, groups, lr)
        self.loss_fn = get_loss(loss)

    def multiplied_parameter_groups(self) -> List[Tuple[str, list, float]]:
        """(group name, parameters, learning-rate multiplier) of the parameters not trained at the base rate."""
        return [("residual_rule", [p for n, p in self.named_parameters() if n.startswith("rule.")],
                 self.residual_lr_multiplier)]

    def lr_decay(self, factor: float = 0.1, min_lr: float = 1e-6) -> float:
        """FuxiCTR's lr_decay (every group scaled, floored at min_lr); returns the base group's new rate."""
        super().lr_decay(factor, min_lr)
        return self.optimizer.param_groups[0]["lr"]

    def load_weights(self, checkpoint: str) -> None:
        """FuxiCTR's load_weights, refusing a checkpoint of another parameter layout (checkpoint_format.py)."""
        self.to(self.device)
        state_dict = torch.load(checkpoint, map_location="cpu")
        check_checkpoint_format(state_dict, checkpoint)
        state_dict.setdefault(FORMAT_KEY, format_buffer())
        self.load_state_dict(state_dict)

    def build_tokenizer(self, name: str, num_fields: int, embedding_dim: int, num_tokens: int, d_model: int,
                        options: dict, **kwargs) -> nn.Module:
        """The tokenizer e (B, F, E) -> X0 (B, T, d); subclasses may wrap it (HiFormer's task token)."""
        return build_tokenizer(name, num_fields, embedding_dim, num_tokens, d_model, **options)

    def build_units(self, num_tokens: int, d_model: int, num_layers: int, num_heads: int, ffn_ratio: float,
                    ffn_activation: str, token_specific: bool, causal: bool, attention_dropout: float,
                    net_dropout: float, pyramid_tokens: Optional[List[int]] = None, attention_impl: str = "auto",
                    **kwargs) -> Tuple[List[nn.Module], int, int]:
        """Return (units, units per layer, token count after the last unit). Here: L x (attention, FFN).

        ``pyramid_tokens: [T_1, ..., T_L]`` (OneTrans' pyramid): layer l keeps only its last T_l queries, so its
        FFN and every later layer run on T_l tokens; the residual rule is told through ``shrink``.
        """
        sizes = pyramid_token_counts(pyramid_tokens, num_tokens, num_layers)
        units, tokens = [], num_tokens
        for keep in sizes:
            units.append(TokenAttention(tokens, d_model, num_heads, token_specific, causal, attention_dropout,
                                        num_queries=keep, attention_impl=attention_impl))
            units.append(TokenFFN(keep, d_model, ffn_ratio, token_specific, ffn_activation, net_dropout))
            tokens = keep
        return units, 2, tokens

    def backbone(self, inputs: dict) -> torch.Tensor:
        """Final token states X_L (B, T_L, d) before the final norm."""
        x = self.get_inputs(inputs)
        tokens = self.tokenizer(self.embedding_layer(x))
        return self.run_units(to_token_major(tokens) if self.token_major else tokens)

    def run_units(self, tokens: torch.Tensor) -> torch.Tensor:
        """X0 -> X_L through the units wired by the residual rule (the part ``compile: true`` compiles)."""
        return self.rule.run(tokens, list(self.units))

    def autocast(self):
        """bfloat16 autocast for ``precision: bf16`` (the depth reads keep float32 inside), else a no-op."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, inputs: dict) -> dict:
        with self.autocast():
            logit = self.head(self.readout(self.final_norm(self.backbone(inputs))))
        logit = logit.float()
        return {"y_pred": self.output_activation(logit), "logit": logit}

    def add_loss(self, return_dict: dict, y_true: torch.Tensor) -> torch.Tensor:
        """FuxiCTR's loss (BCE on probabilities) in fp32; under ``precision: bf16`` BCE from the float32 logits,
        which is the form autocast accepts and the stable one when the head ran in bfloat16."""
        if self.precision == "fp32":
            return super().add_loss(return_dict, y_true)
        return F.binary_cross_entropy_with_logits(return_dict["logit"], y_true.float(), reduction="mean")

    def regularization_loss(self):
        """FuxiCTR's regulariser, except that residual-rule parameters (gates, pseudo-queries, mixing scalars)
        are never penalised: weight decay on a gate logit would pull every gate to 1/2 (rewritten because
        FuxiCTR's version has no hook to exclude parameters)."""
        if not (self._embedding_regularizer or self._net_regularizer):
            return 0
        emb_reg = get_regularizer(self._embedding_regularizer)
        net_reg = get_regularizer(self._net_regularizer)
        skip_rule = getattr(self.rule, "exclude_from_regularizer", True)
        reg_term = 0
        for name, param in self.named_parameters():
            if not param.requires_grad or (skip_rule and name.startswith("rule.")):
                continue
            terms = emb_reg if name.startswith("embedding_layer.") else net_reg
            for p, lam in terms:
                reg_term = reg_term + (lam / p) * torch.norm(param, p) ** p
        return reg_term
