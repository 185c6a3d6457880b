"""TokenMixer-Large (arXiv 2602.06563): exact Mix/Revert, x0.01 down projections, Groups + global tokens,
inter-residual wiring and auxiliary losses."""

import math

import pytest
import torch

from conftest import build_model, toy_batch
from fuxictr_deres.layers.group_tokenizer import GroupTokenizer, contiguous_groups
from fuxictr_deres.layers.mixing import TokenMixing
from fuxictr_deres.models import TokenMixerLarge


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16])
def test_revert_is_the_exact_inverse_of_mix(heads):
    mixing = TokenMixing(num_tokens=4, d_model=16, num_heads=heads)
    x = torch.randn(3, 4, 16)
    mixed = mixing(x)
    assert mixed.shape == (3, heads, 4 * 16 // heads)
    assert torch.equal(mixing.revert(mixed), x)


def test_d_model_not_divisible_by_heads_is_an_error(feature_map):
    with pytest.raises(ValueError, match="num_heads=3.*d_model=16"):
        build_model(TokenMixerLarge, feature_map, mix_heads=3)


def test_down_projections_keep_their_x0_01_init_after_reset_parameters(feature_map):
    model = build_model(TokenMixerLarge, feature_map, num_layers=1, ffn_ratio=4, d_model=32)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    model.reset_parameters()
    block = model.units[0]
    for ffn in (block.token_ffn, block.mixed_ffn):
        d_in, hidden = ffn.gate.d_in, ffn.gate.d_out
        down_std, gate_std = ffn.down.weight.std().item(), ffn.gate.weight.std().item()
        assert down_std == pytest.approx(0.01 * math.sqrt(2.0 / (d_in + hidden)), rel=0.1)
        assert gate_std == pytest.approx(math.sqrt(2.0 / (d_in + hidden)), rel=0.1)
        assert ffn.down.bias is None and ffn.gate.bias is None


def test_groups_tokenizer_groups_and_global_token():
    assert contiguous_groups(8, 3) == [[0, 1, 2], [3, 4], [5, 6, 7]]
    tok = GroupTokenizer(num_fields=5, embedding_dim=3, num_tokens=3, d_model=4, groups=[[4], [0, 1, 2, 3]])
    e = torch.randn(2, 5, 3)
    out = tok(e)
    assert out.shape == (2, 3, 4)
    # group 0 holds one field: padding to the widest group must not change its token
    w_up, b_up = tok.group_up.weight[0, :3], tok.group_up.bias[0]
    expected = tok.group_act(e[:, 4] @ w_up + b_up) @ tok.group_down.weight[0] + tok.group_down.bias[0]
    torch.testing.assert_close(out[:, 0], expected)
    torch.testing.assert_close(out[:, 2], tok.global_mlp(e.flatten(1)))
    with pytest.raises(ValueError, match="exactly once"):
        GroupTokenizer(5, 3, 3, 4, groups=[[0, 1], [1, 2, 3, 4]])
    with pytest.raises(ValueError, match="number of groups"):
        GroupTokenizer(2, 3, 5, 4)


def manual_inter_residual(model, x):
    """X^(l+1) = X^(l) + f_l(X^(l)), then X^(l+s) += X^(l) for l + s < L (prenorm, from the equations)."""
    states = [x]
    s, layers = model.inter_residual_every, len(model.units)
    for l, unit in enumerate(model.units):
        nxt = states[-1] + unit(states[-1])
        if (l + 1) % s == 0 and l + 1 < layers:
            nxt = nxt + states[l + 1 - s]
        states.append(nxt)
    return states[-1]


@pytest.mark.parametrize("every,layers", [(2, 5), (3, 4), (2, 2)])
def test_inter_residual_wiring(feature_map, every, layers):
    model = build_model(TokenMixerLarge, feature_map, num_layers=layers, inter_residual_every=every,
                        down_init_scale=1.0).eval()
    batch = toy_batch(4)
    x0 = model.tokenizer(model.embedding_layer(model.get_inputs(batch)))
    torch.testing.assert_close(model.backbone(batch), manual_inter_residual(model, x0))
    if layers == every:   # never into the last block: equals the plain rule loop
        torch.testing.assert_close(model.backbone(batch), model.rule.run(x0, list(model.units)))


def test_aux_losses_only_while_training(feature_map):
    model = build_model(TokenMixerLarge, feature_map, num_layers=3, aux_loss_weight=0.5)
    batch = toy_batch(8)
    y = model.get_labels(batch)
    out = model.train()(batch)
    assert len(out["aux_logits"]) == 2
    main = model.loss_fn(out["y_pred"], y, reduction="mean")
    aux = torch.stack([model.loss_fn(torch.sigmoid(l), y, reduction="mean") for l in out["aux_logits"]]).mean()
    torch.testing.assert_close(model.add_loss(out, y), main + 0.5 * aux)
    assert "aux_logits" not in model.eval()(batch)
    with pytest.raises(ValueError, match="aux_loss_layers"):
        build_model(TokenMixerLarge, feature_map, num_layers=3, aux_loss_layers=[3])
