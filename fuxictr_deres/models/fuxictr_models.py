"""FuxiCTR's own DCNv2 (Wang et al., WWW'21, arXiv 2008.13535) and FinalMLP (Mao et al., AAAI'23, arXiv
2304.00902), imported from the installed wheel (``model_zoo.LongCTR``) and registered as ``model: DCNv2`` and
``model: FinalMLP``; and FuxiCTR's DNN (``model: DNN``), which the wheel does not ship (see ``DNN``).

The wheel ships only the LongCTR (behaviour-sequence) versions: their ``forward``/``get_inputs`` expect a
(batch, item, mask) triple and their constructors size the input with item features. The subclasses below keep
the wheel's constructors and layers and only read a plain FuxiCTR batch dict, as the BARS versions do.
"""

from typing import List

import torch
from fuxictr.pytorch.layers import FeatureEmbedding, MLP_Block
from fuxictr.pytorch.models import BaseModel
from model_zoo.LongCTR import DCNv2 as _LongCTRDCNv2
from model_zoo.LongCTR import FinalMLP as _LongCTRFinalMLP


class _PlainBatch:
    """A plain FuxiCTR batch dict (no behaviour sequence), read as BaseModel reads it."""

    get_inputs = BaseModel.get_inputs
    get_labels = BaseModel.get_labels
    get_group_id = BaseModel.get_group_id


def _with_default_emb_dim(feature_map, kwargs: dict):
    """The wheel sizes its input with ``feature_map.sum_emb_out_dim()``, which needs ``default_emb_dim``;
    ``FeatureMap.load(json, params)`` sets it from the config, an in-memory map may not have it."""
    if getattr(feature_map, "default_emb_dim", None) is None:
        feature_map.default_emb_dim = kwargs.get("embedding_dim", 10)
    return feature_map


class DCNv2(_PlainBatch, _LongCTRDCNv2):
    """DCNv2: CrossNetV2 (x_{l+1} = x_0 * (W_l x_l + b_l) + x_l) with a parallel or stacked DNN.

    Defaults follow the BARS Criteo configs (parallel, 3 cross layers, DNN [400, 400, 400]); the wheel's own
    defaults (empty DNNs) fail to build.
    """

    def __init__(self, feature_map, model_id: str = "DCNv2", model_structure: str = "parallel",
                 num_cross_layers: int = 3, stacked_dnn_hidden_units: List[int] = (400, 400, 400),
                 parallel_dnn_hidden_units: List[int] = (400, 400, 400), **kwargs):
        super().__init__(_with_default_emb_dim(feature_map, kwargs), model_id=model_id,
                         model_structure=model_structure, num_cross_layers=num_cross_layers,
                         stacked_dnn_hidden_units=list(stacked_dnn_hidden_units),
                         parallel_dnn_hidden_units=list(parallel_dnn_hidden_units), **kwargs)

    def forward(self, inputs: dict) -> dict:
        feature_emb = self.embedding_layer(self.get_inputs(inputs), flatten_emb=True)
        cross_out = self.crossnet(feature_emb)
        if self.model_structure == "crossnet_only":
            final_out = cross_out
        elif self.model_structure == "stacked":
            final_out = self.stacked_dnn(cross_out)
        elif self.model_structure == "parallel":
            final_out = torch.cat([cross_out, self.parallel_dnn(feature_emb)], dim=-1)
        else:
            final_out = torch.cat([self.stacked_dnn(cross_out), self.parallel_dnn(feature_emb)], dim=-1)
        return {"y_pred": self.output_activation(self.fc(final_out))}


class FinalMLP(_PlainBatch, _LongCTRFinalMLP):
    """FinalMLP: two MLP streams with feature-selection gates, fused by multi-head bilinear aggregation.

    The wheel's LongCTR forward skips the feature-selection gates it builds; this forward applies them when
    ``use_fs`` is set, as the paper and the BARS version do.
    """

    def __init__(self, feature_map, model_id: str = "FinalMLP", **kwargs):
        super().__init__(_with_default_emb_dim(feature_map, kwargs), model_id=model_id, **kwargs)

    def forward(self, inputs: dict) -> dict:
        x = self.get_inputs(inputs)
        flat_emb = self.embedding_layer(x, flatten_emb=True)
        feat1, feat2 = self.fs_module(x, flat_emb) if self.use_fs else (flat_emb, flat_emb)
        y_pred = self.fusion_module(self.mlp1(feat1), self.mlp2(feat2))
        return {"y_pred": self.output_activation(y_pred)}


class DNN(BaseModel):
    """DNN, the BARS MLP baseline: y = sigmoid(MLP(concat(e_1, ..., e_F))).

    The installed wheel (fuxictr 2.3.10) has no DNN class: ``fuxictr.pytorch.models`` holds only the base classes
    and ``model_zoo`` only the LongCTR and multitask zoos. FuxiCTR's ``model_zoo/DNN`` is nothing but the wheel's
    own ``FeatureEmbedding`` and ``MLP_Block`` in sequence, so it is composed here from those two classes with
    FuxiCTR's constructor keywords (``hidden_units``, ``hidden_activations``, ``net_dropout``, ``batch_norm``).
    """

    def __init__(self, feature_map, model_id: str = "DNN", gpu: int = -1, learning_rate: float = 1e-3,
                 embedding_dim: int = 10, hidden_units: List[int] = (64, 64, 64), hidden_activations: str = "ReLU",
                 net_dropout: float = 0, batch_norm: bool = False, embedding_regularizer=None,
                 net_regularizer=None, **kwargs):
        super().__init__(feature_map, model_id=model_id, gpu=gpu, embedding_regularizer=embedding_regularizer,
                         net_regularizer=net_regularizer, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.mlp = MLP_Block(input_dim=feature_map.get_num_fields() * embedding_dim, output_dim=1,
                             hidden_units=list(hidden_units), hidden_activations=hidden_activations,
                             output_activation=self.output_activation, dropout_rates=net_dropout,
                             batch_norm=batch_norm)
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def forward(self, inputs: dict) -> dict:
        feature_emb = self.embedding_layer(self.get_inputs(inputs), flatten_emb=True)
        return {"y_pred": self.mlp(feature_emb)}
