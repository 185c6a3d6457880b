"""DeRes (Cheng et al., arXiv 2606.07980): the OneTrans token backbone with the DeRes dual-path residual rule."""

from .token_ctr import TokenCTR


class DeRes(TokenCTR):
    """OneTrans backbone (AutoSplit tokens, token-specific attention and FFN units) + ``residual: deres``.

    Every option of the rule (path_mode, identity_mode, score_fn, tau, beta, gate, num_blocks, block_size,
    per_token_query) goes in ``residual_params``; the rule can also be put on any other backbone by name.
    """

    default_residual = "deres"

    def __init__(self, feature_map, model_id="DeRes", **kwargs):
        super().__init__(feature_map, model_id=model_id, **kwargs)
