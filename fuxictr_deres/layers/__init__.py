"""Reusable torch modules of the token backbones: token-wise linears, tokenizers, units, readouts."""

from .token_linear import TokenLinear
from .tokenizers import AutoSplitTokenizer, InputNormTokenizer, PerFieldTokenizer, build_tokenizer
from .attention import TokenAttention
from .ffn import TokenFFN
from .readout import Readout

__all__ = ["TokenLinear", "AutoSplitTokenizer", "InputNormTokenizer", "PerFieldTokenizer", "build_tokenizer",
           "TokenAttention", "TokenFFN", "Readout"]
