"""The residual-rule baselines of specs/residual_rules.md: each at its identity/init setting against the Pre-Norm
model, their special initialisations against FuxiCTR's reset_parameters(), a shrinking token count, and depth."""

import pytest
import torch
from torch import nn

from conftest import build_model, toy_batch
from fuxictr_deres.models import OneTrans, TokenCTR
from fuxictr_deres.residuals import build_residual_rule


def twin(feature_map, residual, residual_params=None, **kw):
    """A TokenCTR model with ``residual`` and a OneTrans (Pre-Norm) model sharing every backbone weight."""
    ref = build_model(OneTrans, feature_map, **kw)
    model = build_model(TokenCTR, feature_map, residual=residual, residual_params=residual_params or {}, **kw)
    missing, unexpected = model.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("rule.") for k in missing)
    return model.eval(), ref.eval()


# ---------------------------------------------------------------- Post-Norm

def test_postnorm_is_norm_of_the_sum(feature_map):
    model, _ = twin(feature_map, "postnorm", num_layers=2)
    x0 = torch.randn(4, model.num_tokens, model.d_model)
    units = list(model.units)
    x = x0
    for u, unit in enumerate(units):
        x = nn.functional.layer_norm(x + unit(x), (model.d_model,), eps=1e-5)
    torch.testing.assert_close(model.rule.run(x0, units), x)


def test_postnorm_rmsnorm_option_and_bad_norm():
    rule = build_residual_rule("postnorm", {"norm": "rmsnorm"}, 4, 8, 3)
    assert isinstance(rule.norms[0], nn.RMSNorm)
    with pytest.raises(ValueError, match="norm"):
        build_residual_rule("postnorm", {"norm": "batchnorm"}, 4, 8, 3)
