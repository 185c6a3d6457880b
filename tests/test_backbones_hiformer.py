"""HiFormer (arXiv 2311.05884): composite low-rank Q/K, task-token query in the last layer."""

import pytest
import torch

from conftest import build_model, toy_batch
from fuxictr_deres.layers import TokenAttention
from fuxictr_deres.layers.hetero_attention import CompositeAttention
from fuxictr_deres.models import HiFormer


def test_composite_kv_attention_matches_the_papers_equation():
    """Hiformer layer (arXiv 2311.05884, Section 4): token-specific Q_i, composite low-rank K and V."""
    att = CompositeAttention(num_tokens=3, d_model=4, num_heads=1, rank=2)
    assert att.composite == "kv"
    h = torch.randn(5, 3, 4)
    hn = att.norm(h)
    c = hn.flatten(1)
    q = torch.stack([hn[:, i] @ att.query.weight[i] + att.query.bias[i] for i in range(3)], 1)
    k = (c @ att.k_down.weight.T @ att.k_up.weight.T).view(5, 3, 4)
    v = (c @ att.v_down.weight.T @ att.v_up.weight.T).view(5, 3, 4)
    a = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1) @ v
    expected = torch.stack([a[:, i] @ att.out.weight[i] + att.out.bias[i] for i in range(3)], 1)
    torch.testing.assert_close(att(h), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="composite='vq'"):
        CompositeAttention(num_tokens=3, d_model=4, num_heads=1, rank=2, composite="vq")


def test_composite_qk_option_matches_its_equation():
    att = CompositeAttention(num_tokens=3, d_model=4, num_heads=1, rank=2, composite="qk")
    h = torch.randn(5, 3, 4)
    hn = att.norm(h)
    c = hn.flatten(1)
    q = (c @ att.q_down.weight.T @ att.q_up.weight.T).view(5, 3, 4)
    k = (c @ att.k_down.weight.T @ att.k_up.weight.T).view(5, 3, 4)
    v = torch.stack([hn[:, j] @ att.value.weight[j] + att.value.bias[j] for j in range(3)], 1)
    a = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1) @ v
    expected = torch.stack([a[:, i] @ att.out.weight[i] + att.out.bias[i] for i in range(3)], 1)
    torch.testing.assert_close(att(h), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("composite", ["kv", "qk"])
def test_task_query_only_equals_last_row_of_full_layer(composite):
    full = CompositeAttention(num_tokens=4, d_model=8, num_heads=2, rank=3, composite=composite)
    last = CompositeAttention(num_tokens=4, d_model=8, num_heads=2, rank=3, num_queries=1, composite=composite)
    state = full.state_dict()
    for name in ("out", "query") if composite == "kv" else ("out",):
        state[f"{name}.weight"], state[f"{name}.bias"] = state[f"{name}.weight"][-1:], state[f"{name}.bias"][-1:]
    last.load_state_dict(state)
    h = torch.randn(2, 4, 8)
    torch.testing.assert_close(last(h), full(h)[:, -1:], rtol=1e-5, atol=1e-6)
    assert last.flops(4) < full.flops(4)


def test_task_token_model_reads_one_token(feature_map):
    model = build_model(HiFormer, feature_map, task_token=True, num_layers=2)
    assert isinstance(model.units[0], TokenAttention) and model.units[2].num_queries == 1
    batch = toy_batch(6)
    x0 = model.tokenizer(model.embedding_layer(model.get_inputs(batch)))
    assert x0.shape == (6, model.num_tokens, model.d_model)
    assert torch.equal(x0[:, -1], model.tokenizer.task.expand(6, -1))
    assert model.backbone(batch).shape == (6, 1, model.d_model)
    with torch.no_grad():
        model.tokenizer.task.zero_()
    model.reset_parameters()
    assert model.tokenizer.task.abs().sum() > 0


@pytest.mark.parametrize("dataset", ["frappe", "criteo", "movielenslatest"])
def test_configs_use_one_token_per_feature_and_composite_kv(dataset):
    from conftest import expid_model
    model = expid_model(f"HiFormer_{dataset}")
    num_fields = model.feature_map.get_num_fields()
    assert model.num_tokens == num_fields + 1                               # + the task token
    assert "PerFieldTokenizer" in {type(m).__name__ for m in model.tokenizer.modules()}
    composite = [u for u in model.units if isinstance(u, CompositeAttention)]
    assert composite and all(u.composite == "kv" for u in composite)
    from fuxictr_deres.bench.synthetic import synthetic_batch
    assert model.backbone(synthetic_batch(model.feature_map, 4)).shape == (4, 1, model.d_model)
