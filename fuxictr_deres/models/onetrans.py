"""OneTrans (Zhang et al., WWW'26, arXiv 2510.26104) without behaviour sequences: its non-sequential tokens
through Pre-Norm blocks with token-specific attention and FFN. DeRes' reference point."""

from .token_ctr import TokenCTR


class OneTrans(TokenCTR):
    """Z = MixedMHA(RMSNorm(X)) + X;  X = MixedFFN(RMSNorm(Z)) + Z  (``residual: prenorm``).

    ``causal: True`` is the paper's causal mask; the default is full attention, which its ablation found equal
    in AUC and which does not impose an order on order-free non-sequential tokens.
    """

    default_residual = "prenorm"

    def __init__(self, feature_map, model_id="OneTrans", **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
