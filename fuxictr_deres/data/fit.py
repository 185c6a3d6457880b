"""Fitting FuxiCTR's ``FeatureProcessor`` from streamed statistics.

``FeatureProcessor.fit`` gathers its statistics with one polars query per column over the whole training frame
(``_collect_statistics``); on a raw CSV each query re-parses the file and full Criteo does not fit in 24 GB. Here
the same statistics (value counts per categorical/meta column, min/max/mean/std/count for normalised numeric
columns) are accumulated chunk by chunk and handed to FuxiCTR's own ``fit``, so the fitted ``Tokenizer`` and
``Normalizer`` objects, ``feature_processor.pkl`` and ``feature_map.json`` stay FuxiCTR's.
"""
from typing import Dict, List, Optional
from unittest import mock

import numpy as np
import polars as pl

_MERGE_EVERY = 8  # partial counts kept per column before they are merged (bounds memory)


def _active(processor, kind: str) -> List[dict]:
    return [c for c in processor.feature_cols if c.get("active", True) and c["type"] == kind]


def check_supported(processor) -> None:
    """Refuse the feature settings the streaming path does not reproduce (instead of silently differing)."""
    for col in processor.feature_cols:
        if not col.get("active", True):
            continue
        if col["type"] not in ("categorical", "numeric", "meta"):
            raise NotImplementedError(f"{col['name']}: feature type {col['type']!r} is not supported by the "
                                      "streaming data path (supported: categorical, numeric, meta)")
        for key in ("category_processor", "share_embedding", "pretrained_emb"):
            if key in col:
                raise NotImplementedError(f"{col['name']}: {key} is not supported by the streaming data path")
        if col["type"] == "categorical" and col.get("remap", True) is False:
            raise NotImplementedError(f"{col['name']}: remap: False is not supported by the streaming data path")


class StreamingStatistics(object):
    """Accumulate FuxiCTR's fitting statistics over chunks of preprocessed rows.

    ``add(frame, train_mask)``: categorical and numeric statistics use the train rows only, meta columns all
    rows (as FuxiCTR's ``meta_ddf``). ``result(min_counts)`` returns the dict ``_collect_statistics`` returns.
    """

    def __init__(self, processor):
        check_supported(processor)
        self.cat_cols = [c["name"] for c in _active(processor, "categorical")]
        self.meta_cols = [c["name"] for c in _active(processor, "meta") if c.get("remap", True)]
        self.num_cols = [c["name"] for c in _active(processor, "numeric") if "normalizer" in c]
        self.partial: Dict[str, List[pl.DataFrame]] = {c: [] for c in self.cat_cols + self.meta_cols}
        self.numeric: Dict[str, List[pl.Series]] = {c: [] for c in self.num_cols}

    def add(self, frame: pl.DataFrame, train_mask: Optional[np.ndarray] = None) -> None:
        train = frame if train_mask is None or train_mask.all() else frame.filter(pl.Series(train_mask))
        for name in self.cat_cols + self.meta_cols:
            source = frame if name in self.meta_cols else train
            counts = source.select(pl.col(name).drop_nulls().value_counts()).unnest(name)
            self.partial[name].append(counts.rename({name: "value"}).with_columns(pl.col("count").cast(pl.Int64)))
            if len(self.partial[name]) >= _MERGE_EVERY:
                self.partial[name] = [self._merge(self.partial[name])]
        for name in self.num_cols:
            # normalisers need exact mean/std as FuxiCTR computes them: keep the (float) train values
            self.numeric[name].append(train[name].drop_nulls())

    @staticmethod
    def _merge(frames: List[pl.DataFrame]) -> pl.DataFrame:
        return pl.concat(frames).group_by("value").agg(pl.col("count").sum())

    def result(self, min_counts: Optional[Dict[str, int]] = None) -> dict:
        """FuxiCTR's statistics dict; values rarer than ``min_counts[name]`` are dropped early (the Tokenizer
        stops at them anyway, so the vocabulary is the same)."""
        stats = {}
        for name, frames in self.partial.items():
            merged = self._merge(frames) if frames else pl.DataFrame({"value": [], "count": []}, schema={"value": pl.String, "count": pl.Int64})
            floor = (min_counts or {}).get(name, 1)
            if floor > 1:
                merged = merged.filter(pl.col("count") >= floor)
            stats[name] = {"value_counts": dict(zip(merged["value"].to_list(), merged["count"].to_list()))}
        for name, parts in self.numeric.items():
            s = pl.concat(parts) if parts else pl.Series(name, [], dtype=pl.Float64)
            stats[name] = {"min": s.min(), "max": s.max(), "mean": s.mean(), "std": s.std(ddof=0),
                           "count": s.len()}
        return stats


def min_counts(processor, default: int) -> Dict[str, int]:
    """The minimum count of each categorical column (its own ``min_categr_count`` or the dataset's)."""
    return {c["name"]: int(c.get("min_categr_count", default)) for c in _active(processor, "categorical")}


def fit_processor(processor, stats: dict, min_categr_count: int = 1, num_buckets: int = 10) -> None:
    """Run FuxiCTR's ``FeatureProcessor.fit`` with ``stats`` in place of its own statistics queries.

    ``fit`` writes feature_map.json, feature_processor.pkl and feature_vocab.json to ``processor.data_dir``.
    """
    floors = min_counts(processor, min_categr_count)
    for col in _active(processor, "categorical"):
        name, na = col["name"], col.get("fill_na", "")
        if not any(v != na for v in stats[name]["value_counts"]):
            raise ValueError(f"column {name!r}: no value occurs at least {floors[name]} times in the train split "
                             "(lower min_categr_count or check the data)")
    # patched on the class, not the instance, so the pickled processor carries no trace of it
    with mock.patch.object(type(processor), "_collect_statistics", lambda self, train, meta=None: stats):
        processor.fit(None, min_categr_count=min_categr_count, num_buckets=num_buckets, rebuild_dataset=True)

