"""Models of an expid without its data: a FeatureMap (the prepared one, or a synthetic one from the dataset config)
and synthetic batches on it, for FLOP counts, speed ratios and diagnostics.

FLOPs and step times do not depend on vocabulary sizes (embedding look-ups count 0), only on the number of fields,
their types and the model config, so a synthetic FeatureMap with the dataset's active feature columns (names and
types from ``dataset_config.yaml``, every vocabulary ``SYNTHETIC_VOCAB`` ids) gives the same counts as the real one.
"""

import os
import tempfile
from typing import Dict, List, Optional, Tuple

import torch
from fuxictr.features import FeatureMap

from ..config import apply_overrides, load_expid
from ..errors import ConfigError

SYNTHETIC_VOCAB = 100


def _feature_columns(params: dict) -> List[dict]:
    cols = []
    for spec in params.get("feature_cols") or []:
        if not spec.get("active", True):
            continue
        names = spec["name"] if isinstance(spec["name"], list) else [spec["name"]]
        cols += [dict(spec, name=n) for n in names]
    return cols


def synthetic_feature_map(params: dict, tmp_dir: Optional[str] = None) -> FeatureMap:
    """A FeatureMap with the dataset's active feature columns (types from its config, ``SYNTHETIC_VOCAB`` ids)."""
    cols = _feature_columns(params)
    if not cols:
        raise ConfigError(f"dataset {params.get('dataset_id')!r} has no active feature_cols in its dataset config")
    fm = FeatureMap(params.get("dataset_id", "synthetic"), tmp_dir or tempfile.gettempdir())
    for col in cols:
        kind = col.get("type", "categorical")
        if kind == "numeric":
            fm.features[col["name"]] = {"source": "", "type": "numeric"}
        elif kind in ("categorical", "sequence"):
            spec = {"source": "", "type": kind, "padding_idx": 0, "vocab_size": SYNTHETIC_VOCAB}
            if kind == "sequence":
                spec.update(max_len=int(col.get("max_len", 8)), feature_encoder=col.get("encoder"))
            fm.features[col["name"]] = spec
        else:
            raise ConfigError(f"dataset {params.get('dataset_id')!r}: feature {col['name']!r} has type {kind!r}; "
                              f"expected numeric, categorical or sequence")
    label = params.get("label_col", {"name": "label"})
    fm.labels = [label["name"]] if isinstance(label, dict) else [l["name"] for l in label]
    fm.num_fields = fm.get_num_fields()
    fm.default_emb_dim = params.get("embedding_dim")
    fm.set_column_index()
    return fm


def feature_map_for(params: dict, synthetic: bool = False) -> Tuple[FeatureMap, str]:
    """The prepared dataset's FeatureMap when its ``feature_map.json`` exists (and ``synthetic`` is False), else a
    synthetic one; returns (feature map, a note saying which)."""
    root = params.get("prepared_root") or params.get("data_root", "")
    path = os.path.join(root, params["dataset_id"], "feature_map.json")
    if not synthetic and os.path.isfile(path):
        fm = FeatureMap(params["dataset_id"], os.path.dirname(path))
        fm.load(path, params)
        return fm, f"FeatureMap of the prepared dataset ({path})"
    return synthetic_feature_map(params), (f"synthetic FeatureMap: {len(_feature_columns(params))} fields of "
                                           f"dataset {params['dataset_id']!r}, vocabularies of {SYNTHETIC_VOCAB}")


def synthetic_batch(feature_map: FeatureMap, batch_size: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A batch dict in FuxiCTR's layout (one tensor per feature and label) with random valid ids and values."""
    g = torch.Generator().manual_seed(seed)
    batch = {}
    for name, spec in feature_map.features.items():
        kind = spec.get("type")
        if kind == "numeric":
            batch[name] = torch.rand(batch_size, generator=g)
        elif kind == "sequence":
            batch[name] = torch.randint(1, spec["vocab_size"], (batch_size, spec["max_len"]), generator=g)
        elif kind == "categorical":
            batch[name] = torch.randint(1, spec["vocab_size"], (batch_size,), generator=g)
    for label in feature_map.labels:
        batch[label] = torch.randint(0, 2, (batch_size,), generator=g).float()
    return batch


def expid_params(config_dir: str, expid: str, overrides: Optional[dict] = None) -> dict:
    """The expid's merged parameters with ``overrides``; ``model_root`` points to a scratch folder so building a
    model for measurement never touches the real checkpoints."""
    params = load_expid(config_dir, expid)
    params = apply_overrides(params, overrides)
    params.setdefault("model_id", expid)
    params["gpu"] = params.get("gpu", -1)
    params["model_root"] = tempfile.gettempdir()
    return params


def build_for_measurement(params: dict, feature_map: FeatureMap, seed: int = 0):
    """The expid's model, built as the runner builds it, seeded."""
    from ..runner import build_model
    torch.manual_seed(seed)
    return build_model(params, feature_map)
