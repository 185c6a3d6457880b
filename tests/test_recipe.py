"""The backbone recipe (Base in benchmark_configs/model_config/base.yaml) and the reference expids (issue 12)."""

import pytest
import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.layers import MLP_Block
from model_zoo.LongCTR import DCNv2 as WheelDCNv2
from model_zoo.LongCTR import FinalMLP as WheelFinalMLP

from conftest import CONFIG, build_model, toy_batch
from fuxictr_deres.config import load_expid
from fuxictr_deres.layers import InputNormTokenizer, build_tokenizer
from fuxictr_deres.models import DeRes, OneTrans, get_model_class

FIELDS = 8


@pytest.mark.parametrize("name,tokens,options", [("autosplit", 4, {}), ("perfield", FIELDS, {}), ("chunk", 4, {}),
                                                 ("groups", 3, {})])
def test_input_norm_makes_x0_independent_of_the_embedding_scale(name, tokens, options):
    torch.manual_seed(0)
    plain = build_tokenizer(name, FIELDS, 6, tokens, 16, **options)
    normed = build_tokenizer(name, FIELDS, 6, tokens, 16, input_norm=True, **options)
    assert isinstance(normed, InputNormTokenizer) and not isinstance(plain, InputNormTokenizer)
    normed.tokenizer.load_state_dict(plain.state_dict())
    e = torch.randn(5, FIELDS, 6)
    flat = normed.input_norm(e.flatten(start_dim=1))
    torch.testing.assert_close(flat.pow(2).mean(dim=1), torch.ones(5), rtol=1e-5, atol=1e-5)   # unit RMS
    # FuxiCTR's embedding init (std 1e-4) and unit-scale embeddings give the same tokens ...
    torch.testing.assert_close(normed(1e-4 * e), normed(e), rtol=1e-4, atol=1e-4)
    # ... which the tokenizer without the norm does not
    assert not torch.allclose(plain(1e-4 * e), plain(e), atol=1e-3)


def test_shipped_token_expids_normalise_their_input_at_the_production_embedding_scale(feature_map):
    """Under the shipped config (FuxiCTR's std-1e-4 embedding init), X0 has O(1) RMS, not ~1e-4."""
    for expid, model_class in (("OneTrans_frappe", OneTrans), ("DeRes_frappe", DeRes)):
        params = load_expid(CONFIG, expid)
        assert params["tokenizer_params"]["input_norm"] is True
        model = build_model(model_class, feature_map, tokenizer_params=params["tokenizer_params"],
                            residual=params["residual"], residual_params=params.get("residual_params"),
                            embedding_initializer="partial(nn.init.normal_, std=1e-4)")
        assert isinstance(model.tokenizer, InputNormTokenizer)
        batch = toy_batch(16)
        x0 = model.tokenizer(model.embedding_layer(model.get_inputs(batch)))
        assert x0.pow(2).mean().sqrt() > 0.1


def dataset_feature_map(tmp_path, dataset_id: str) -> FeatureMap:
    """A FeatureMap with the dataset's field names (FinalMLP's feature-selection contexts name fields)."""
    params = load_expid(CONFIG, f"DCNv2_{dataset_id}")
    names = [n for col in params["feature_cols"] for n in (col["name"] if isinstance(col["name"], list)
                                                           else [col["name"]])]
    fm = FeatureMap(dataset_id, str(tmp_path))
    for n in names:
        fm.features[n] = {"source": "", "type": "categorical", "padding_idx": 0, "vocab_size": 20}
    fm.labels = ["label"]
    fm.num_fields = fm.get_num_fields()
    fm.set_column_index()
    fm.default_emb_dim = params["embedding_dim"]
    return fm


def reference_model(tmp_path, expid: str):
    params = load_expid(CONFIG, expid, model_root=str(tmp_path))
    params.update(gpu=-1, verbose=0)
    fm = dataset_feature_map(tmp_path, params["dataset_id"])
    torch.manual_seed(0)
    return get_model_class(params["model"])(fm, **params), params, fm


@pytest.mark.parametrize("dataset_id", ["frappe", "movielenslatest"])
def test_reference_expids_build_fuxictrs_classes_with_the_bars_settings(tmp_path, dataset_id):
    dcn, params, fm = reference_model(tmp_path, f"DCNv2_{dataset_id}")
    assert isinstance(dcn, WheelDCNv2)
    assert len(dcn.crossnet.cross_layers) == params["num_cross_layers"] == {"frappe": 4, "movielenslatest": 5}[
        dataset_id]
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in dcn.parallel_dnn.modules())
    assert {m.p for m in dcn.parallel_dnn.modules() if isinstance(m, torch.nn.Dropout)} == {params["net_dropout"]}

    mlp, params, _ = reference_model(tmp_path, f"FinalMLP_{dataset_id}")
    assert isinstance(mlp, WheelFinalMLP) and mlp.use_fs
    assert mlp.fusion_module.num_heads == params["num_heads"]

    dnn, params, _ = reference_model(tmp_path, f"DNN_{dataset_id}")
    assert isinstance(dnn.mlp, MLP_Block)
    assert [m.out_features for m in dnn.mlp.modules() if isinstance(m, torch.nn.Linear)] == [400, 400, 400, 1]

    g = torch.Generator().manual_seed(1)
    batch = {n: torch.randint(1, 20, (8,), generator=g) for n in fm.features}
    batch["label"] = torch.randint(0, 2, (8,), generator=g).float()
    for model in (dcn, mlp, dnn):
        model.eval()
        y = model(batch)["y_pred"]
        assert y.shape == (8, 1) and torch.all((y > 0) & (y < 1))
    # every training key is BARS's, not the token models' Base recipe
    for expid in (f"DNN_{dataset_id}", f"DCNv2_{dataset_id}", f"FinalMLP_{dataset_id}"):
        p = load_expid(CONFIG, expid)
        assert (p["batch_size"], p["early_stop_patience"], p["learning_rate"], p["embedding_dim"]) == (
            4096, 2, 1e-3, 10)
        assert p["embedding_regularizer"] > 0
