"""WuKong (Zhang et al., Meta, ICML'24, arXiv 2403.02545): stacked factorization machines over embedding tokens.

    X_0 = field embeddings (n_0 = F tokens), projected per field E -> d when d_model != embedding_dim
    X_{i+1} = LN(concat(FMB(X_i), LCB(X_i)) + res(X_i)),  i < L      (layers.fm_block.WuKongLayer)
    y = sigmoid(MLP(flatten(X_L)))
"""

from typing import List, Optional

from torch import nn
from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel

from ..layers.fm_block import WuKongLayer
from ..layers.token_linear import TokenLinear


class WuKong(BaseModel):
    """WuKong with ``num_layers`` interaction layers of ``fmb_tokens`` + ``lcb_tokens`` output tokens.

    Defaults [ours; the paper tunes them per dataset]: n_F = n_L = 8, FM rank k = 8, FMB MLP hidden [64], head
    MLP [64] on the flattened final tokens. ``d_model``: the token width d; the paper embeds every feature at d
    directly, here FuxiCTR's embeddings (the dataset's ``embedding_dim``, e.g. 10 on Frappe, which the dataset
    config fixes for every model) are projected per field to d (a token-specific linear, as the paper's projection
    for features of other widths), so WuKong runs at the token models' width (Base d = 64). None: d = E.
    """

    def __init__(self, feature_map, model_id: str = "WuKong", gpu: int = -1, learning_rate: float = 1e-3,
                 embedding_dim: int = 16, embedding_initializer: str = "partial(nn.init.normal_, std=1e-4)",
                 num_layers: int = 4, fmb_tokens: int = 8, lcb_tokens: int = 8, fm_rank: int = 8,
                 fmb_hidden_units: List[int] = (64,), fmb_activation: str = "ReLU",
                 head_hidden_units: List[int] = (64,), head_activations: str = "ReLU", net_dropout: float = 0.0,
                 d_model: Optional[int] = None, embedding_regularizer=None, net_regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        width = embedding_dim if d_model is None else d_model
        for key, value in (("num_layers", num_layers), ("fmb_tokens", fmb_tokens), ("lcb_tokens", lcb_tokens),
                           ("fm_rank", fm_rank), ("d_model", width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: expected a positive integer")
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim,
                                                embedding_initializer=embedding_initializer)
        self.num_tokens, self.d_model = feature_map.get_num_fields(), width
        self.tokenizer = (TokenLinear(self.num_tokens, embedding_dim, width, token_specific=True)
                          if width != embedding_dim else nn.Identity())
        tokens, units = self.num_tokens, []
        for _ in range(num_layers):
            units.append(WuKongLayer(tokens, width, fmb_tokens, lcb_tokens, fm_rank,
                                     list(fmb_hidden_units), fmb_activation, net_dropout))
            tokens = fmb_tokens + lcb_tokens
        self.units = nn.ModuleList(units)
        self.head = MLP_Block(input_dim=tokens * width, hidden_units=list(head_hidden_units),
                              hidden_activations=head_activations, output_dim=1, dropout_rates=net_dropout)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def unit_token_counts(self) -> List[int]:
        """Input token count of each layer (for the FLOP count: layer i runs on n_i tokens)."""
        return [unit.num_tokens for unit in self.units]

    def forward(self, inputs: dict) -> dict:
        x = self.tokenizer(self.embedding_layer(self.get_inputs(inputs)))
        for unit in self.units:
            x = unit(x)
        logit = self.head(x.flatten(start_dim=1))
        return {"y_pred": self.output_activation(logit), "logit": logit}
