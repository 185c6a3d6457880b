"""Lazy polars readers for the raw inputs a dataset config can name.

FuxiCTR's own ``FeatureProcessor.read_data`` passes ``dtypes=`` to ``pl.scan_csv`` (removed in polars 2), so the
frames are read here with ``schema``/``schema_overrides`` and then handed to FuxiCTR's ``preprocess``/``fit``.
polars reads ``.gz`` files transparently.
"""
import os

import polars as pl

from .demo import CRITEO_COLUMNS

_DTYPES = {"str": pl.String, "float": pl.Float64, "int": pl.Int64}


def polars_dtype(dtype):
    """Map a FuxiCTR config dtype (``"str"``, ``"float"``, ``"int"`` or the Python type) to a polars dtype."""
    name = dtype.__name__ if isinstance(dtype, type) else str(dtype)
    if name not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r} in a feature/label column (expected one of {list(_DTYPES)})")
    return _DTYPES[name]


def column_dtypes(feature_cols, label_col):
    """``{column name: polars dtype}`` for every column named in ``feature_cols`` and ``label_col``."""
    labels = label_col if isinstance(label_col, list) else [label_col]
    out = {}
    for col in list(feature_cols) + labels:
        names = col["name"] if isinstance(col["name"], list) else [col["name"]]
        for name in names:
            if "dtype" in col:
                out[name] = polars_dtype(col["dtype"])
    return out


def resolve_input(path):
    """Return ``path`` if it exists, else ``path + ".gz"`` if that exists, else None."""
    if os.path.isfile(path):
        return path
    if not path.endswith(".gz") and os.path.isfile(path + ".gz"):
        return path + ".gz"
    return None


def scan_criteo_tsv(path, dtypes=None):
    """Raw Kaggle Criteo ``train.txt``: TAB-separated, no header, ``label, I1..I13, C1..C26``; empty = missing.

    ``dtypes`` overrides the default types (label/I* Float64, C* String) by column name.
    """
    schema = {}
    for name in CRITEO_COLUMNS:
        default = pl.String if name.startswith("C") else pl.Float64
        schema[name] = (dtypes or {}).get(name, default)
    return pl.scan_csv(path, separator="\t", has_header=False, schema=schema, quote_char=None)
