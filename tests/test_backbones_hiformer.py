"""HiFormer (arXiv 2311.05884): composite low-rank Q/K, task-token query in the last layer."""

import torch

from conftest import build_model, toy_batch
from fuxictr_deres.layers import TokenAttention
from fuxictr_deres.layers.hetero_attention import CompositeAttention
from fuxictr_deres.models import HiFormer


def test_composite_attention_matches_its_equation():
    att = CompositeAttention(num_tokens=3, d_model=4, num_heads=1, rank=2)
    h = torch.randn(5, 3, 4)
    hn = att.norm(h)
    c = hn.flatten(1)
    q = (c @ att.q_down.weight.T @ att.q_up.weight.T).view(5, 3, 4)
    k = (c @ att.k_down.weight.T @ att.k_up.weight.T).view(5, 3, 4)
    v = torch.stack([hn[:, j] @ att.value.weight[j] + att.value.bias[j] for j in range(3)], 1)
    a = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1) @ v
    expected = torch.stack([a[:, i] @ att.out.weight[i] + att.out.bias[i] for i in range(3)], 1)
    torch.testing.assert_close(att(h), expected, rtol=1e-5, atol=1e-5)


def test_task_query_only_equals_last_row_of_full_layer():
    full = CompositeAttention(num_tokens=4, d_model=8, num_heads=2, rank=3)
    last = CompositeAttention(num_tokens=4, d_model=8, num_heads=2, rank=3, num_queries=1)
    state = full.state_dict()
    state["out.weight"], state["out.bias"] = state["out.weight"][-1:], state["out.bias"][-1:]
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
