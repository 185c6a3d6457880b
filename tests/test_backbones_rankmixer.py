"""RankMixer (arXiv 2507.15551): Chunk tokens, the exact Post-LN block, the FLOP formula, the mixing layout."""

import pytest
import torch
import torch.nn.functional as F

from conftest import build_model
from fuxictr_deres.layers.chunk_tokenizer import ChunkTokenizer
from fuxictr_deres.layers.mixing import TokenMixing, token_mix
from fuxictr_deres.models import RankMixer


def test_chunk_tokenizer_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match=r"embedding_dim=8.*num_tokens=7"):
        ChunkTokenizer(num_fields=8, embedding_dim=8, num_tokens=7, d_model=16)


def test_chunk_tokenizer_projects_each_chunk_with_its_own_weights():
    tok = ChunkTokenizer(num_fields=3, embedding_dim=4, num_tokens=2, d_model=5)
    e = torch.randn(2, 3, 4)
    chunks = e.flatten(1).view(2, 2, 6)
    expected = torch.stack([chunks[:, t] @ tok.proj.weight[t] + tok.proj.bias[t] for t in range(2)], dim=1)
    torch.testing.assert_close(tok(e), expected)


def test_mixing_head_h_gathers_piece_h_of_every_token():
    x = torch.arange(2 * 4 * 8, dtype=torch.float32).view(2, 4, 8)
    mixed = token_mix(x, 4)
    # mixed token 1 = [x_0[2:4], x_1[2:4], x_2[2:4], x_3[2:4]]
    assert torch.equal(mixed[:, 1], torch.cat([x[:, t, 2:4] for t in range(4)], dim=-1))
    with pytest.raises(ValueError, match="d_model=10"):
        TokenMixing(4, 10, 4)


def test_d_model_must_be_divisible_by_num_tokens(feature_map):
    with pytest.raises(ValueError, match="d_model=18.*num_tokens=4"):
        build_model(RankMixer, feature_map, d_model=18)


def test_postnorm_block_is_the_papers_block(feature_map):
    model = build_model(RankMixer, feature_map, num_layers=2).eval()
    x = torch.randn(3, model.num_tokens, model.d_model)
    expected = x
    for unit, outer in zip(model.units, model.rule.norms):
        s = F.layer_norm(token_mix(expected, model.num_tokens) + expected, (model.d_model,),
                         unit.norm.weight, unit.norm.bias, unit.norm.eps)
        expected = outer(unit.ffn(s) + s)
    torch.testing.assert_close(model.rule.run(x, list(model.units)), expected)


def test_sublayer_granularity_with_postnorm_matches_block_granularity(feature_map):
    block = build_model(RankMixer, feature_map).eval()
    sub = build_model(RankMixer, feature_map, granularity="sublayer").eval()
    with torch.no_grad():
        for layer, unit in enumerate(block.units):
            sub.units[2 * layer + 1].load_state_dict(unit.ffn.state_dict())
            sub.rule.norms[2 * layer].load_state_dict(unit.norm.state_dict())
            sub.rule.norms[2 * layer + 1].load_state_dict(block.rule.norms[layer].state_dict())
    x = torch.randn(3, block.num_tokens, block.d_model)
    torch.testing.assert_close(sub.rule.run(x, list(sub.units)), block.rule.run(x, list(block.units)))


def test_unit_flops_match_4kLTd2(feature_map):
    k, layers, t, d = 4, 3, 4, 64
    model = build_model(RankMixer, feature_map, num_tokens=t, d_model=d, num_layers=layers, ffn_ratio=k)
    total = sum(unit.flops(t) for unit in model.units)
    analytic = 4 * k * layers * t * d * d
    assert analytic <= total <= 1.05 * analytic
    params = sum(p.numel() for n, p in model.named_parameters() if n.startswith("units."))
    assert 2 * k * layers * t * d * d <= params <= 1.05 * 2 * k * layers * t * d * d
