"""FuxiCTR model classes of this plugin, found by the name a config gives in ``model:``."""

from typing import Dict

from .deres import DeRes
from .fuxictr_models import DCNv2, DNN, FinalMLP
from .hiformer import HiFormer
from .onetrans import OneTrans
from .rankmixer import RankMixer
from .token_ctr import TokenCTR
from .tokenmixer_large import TokenMixerLarge
from .unimixer import UniMixer, UniMixerLite
from .wukong import WuKong

MODELS: Dict[str, type] = {
    "DCNv2": DCNv2,
    "DeRes": DeRes,
    "DNN": DNN,
    "FinalMLP": FinalMLP,
    "HiFormer": HiFormer,
    "OneTrans": OneTrans,
    "RankMixer": RankMixer,
    "TokenCTR": TokenCTR,
    "TokenMixerLarge": TokenMixerLarge,
    "UniMixer": UniMixer,
    "UniMixerLite": UniMixerLite,
    "WuKong": WuKong,
}


def register_model(name: str, model_class: type) -> type:
    """Make ``model_class`` available as ``model: <name>``."""
    MODELS[name] = model_class
    return model_class


def get_model_class(name: str) -> type:
    """The model class registered as ``name``; an unknown name is an error that lists the known ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model={name!r}; registered models: {sorted(MODELS)}")
    return MODELS[name]


__all__ = ["MODELS", "register_model", "get_model_class", "TokenCTR", "DeRes", "OneTrans", "RankMixer",
           "TokenMixerLarge", "DCNv2", "DNN", "FinalMLP", "WuKong", "HiFormer", "UniMixer",
           "UniMixerLite"]
