"""Deterministic synthetic data in the raw Kaggle Criteo schema (the demo dataset).

Rows are ``label, I1..I13, C1..C26``, TAB-separated, no header, exactly like Criteo's ``train.txt``, so the demo
goes through the same preparation path as real data (the way DLRM's reference code offers synthetic data).
Written by hand because no library generates Criteo-schema rows with a planted, learnable signal.

Planted signal (logit of the click probability):

* additive per-value effects of C1, C2 and C3 (learnable by a linear model on one-hot ids),
* an XOR-style interaction of C4 and C5 (``s4[c4] * s5[c5]`` with random signs; invisible to a linear model),
* a bump on a log-bucket of the count I1 (learnable through the numeric value or its bucket),
* a weak monotone effect of log1p(I5).

The intercept is solved so that the click rate is about 25%.
"""
import gzip
import io
import os

import numpy as np
import polars as pl

NUM_DENSE = 13
NUM_SPARSE = 26
DENSE_COLS = [f"I{i}" for i in range(1, NUM_DENSE + 1)]
SPARSE_COLS = [f"C{i}" for i in range(1, NUM_SPARSE + 1)]
CRITEO_COLUMNS = ["label"] + DENSE_COLS + SPARSE_COLS
TARGET_CLICK_RATE = 0.25

# Per-field vocabulary sizes (before the power law), a mix of tiny, medium and large fields as in Criteo.
_CARDINALITY = [30, 60, 40, 12, 9, 500, 2000, 100, 3, 5000, 800, 20000, 150,
                25, 3000, 10000, 10, 400, 1500, 4, 8000, 7, 14, 600, 50, 300]
# Per-field fraction of missing values (Criteo has several fields that are often empty).
_SPARSE_MISSING = [0.0, 0.0, 0.02, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.0,
                   0.0, 0.0, 0.04, 0.0, 0.0, 0.4, 0.4, 0.0, 0.75, 0.0, 0.04, 0.4, 0.4]
_DENSE_MISSING = [0.45, 0.0, 0.2, 0.2, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.76, 0.2]


def _hex_table(rng, k):
    """k distinct 8-hex-digit strings: an odd multiplier is a bijection modulo 2**32."""
    a = int(rng.integers(0, 2 ** 31)) * 2 + 1
    b = int(rng.integers(0, 2 ** 32))
    codes = (np.arange(k, dtype=np.uint64) * np.uint64(a) + np.uint64(b)) % np.uint64(2 ** 32)
    return pl.Series(np.char.mod("%08x", codes.astype(np.int64)).tolist(), dtype=pl.String)


def _solve_intercept(logit, target):
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1.0 / (1.0 + np.exp(-(logit + mid)))).mean() > target:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


CHUNK_ROWS = 1 << 20  # rows per generated chunk: fixed, so the file for (rows, seed) never depends on memory
_CALIBRATION_ROWS = 100000


class CriteoRowModel(object):
    """Everything drawn once per seed: value tables, field distributions, planted effects, the intercept.

    The row machinery (heavy-tailed counts, power-law hex categoricals, missing values, the intercept solved for
    ``TARGET_CLICK_RATE``) is shared; a subclass plants another label model by overriding ``SALT`` (its own random
    stream), ``plant(rng)`` (draw its effect tables) and ``signal(dense, sparse)`` (the logit, from ``intercept``).
    This class plants the demo signal of the module docstring.
    """

    SALT = 20260  # second word of every seed: a fixed salt per generator

    def __init__(self, seed):
        rng = np.random.default_rng([int(seed), self.SALT])
        self.seed = int(seed)
        # heavy-tailed counts: floor(lognormal) with a field-specific scale
        self.dense = [(rng.uniform(0.0, 3.0), rng.uniform(0.8, 2.0)) for _ in DENSE_COLS]
        self.sparse = []
        for k in _CARDINALITY:
            p = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** rng.uniform(1.05, 1.4)
            self.sparse.append((np.cumsum(p / p.sum()), _hex_table(rng, k)))
        self.plant(rng)
        self.intercept = 0.0
        _, logit = self.draw(np.random.default_rng([self.seed, self.SALT, 0]), _CALIBRATION_ROWS)
        self.intercept = _solve_intercept(logit, TARGET_CLICK_RATE)

    def plant(self, rng):
        """Draw the planted effects (after the value tables, from the same stream)."""
        self.effects = {name: rng.normal(0.0, scale, _CARDINALITY[SPARSE_COLS.index(name)])
                        for name, scale in (("C1", 1.2), ("C2", 1.0), ("C3", 0.8))}
        self.s4 = rng.choice([-1.0, 1.0], _CARDINALITY[3])
        self.s5 = rng.choice([-1.0, 1.0], _CARDINALITY[4])

    def signal(self, dense, sparse):
        """The logit (``intercept`` + planted signal) of rows given as ``draw`` returns their columns."""
        logit = np.full(len(dense["I1"][0]), self.intercept)
        for name, effect in self.effects.items():
            logit += effect[sparse[name][1]]
        logit += 0.9 * self.s4[sparse["C4"][1]] * self.s5[sparse["C5"][1]]
        i1, i1_missing = dense["I1"]
        bucket = np.floor(np.log1p(np.maximum(i1, 0)) ** 2)
        logit += np.where(~i1_missing & (bucket >= 2) & (bucket <= 6), 0.8, 0.0)
        i5, i5_missing = dense["I5"]
        logit += np.where(i5_missing, 0.0, 0.15 * (np.log1p(np.maximum(i5, 0)) - 2.0))
        return logit

    def draw(self, rng, rows):
        """(columns without the label, logit) for ``rows`` new rows: ``dense[name] = (counts, missing)``,
        ``sparse[name] = (hex table, value ids, missing)``."""
        dense = {}
        for j, name in enumerate(DENSE_COLS):
            mu, sigma = self.dense[j]
            vals = np.maximum(np.floor(np.exp(rng.normal(mu, sigma, rows))).astype(np.int64) - 1, 0)
            if name == "I2":  # Criteo's I2 has a few negative values
                vals = np.where(rng.random(rows) < 0.05, -1, vals)
            dense[name] = (vals, rng.random(rows) < _DENSE_MISSING[j])
        sparse = {}
        for j, name in enumerate(SPARSE_COLS):
            cdf, table = self.sparse[j]
            ids = np.minimum(np.searchsorted(cdf, rng.random(rows), side="right"), len(cdf) - 1)
            sparse[name] = (table, ids, rng.random(rows) < _SPARSE_MISSING[j])
        return (dense, sparse), self.signal(dense, sparse)

    def chunk(self, index, rows):
        """Chunk ``index`` (0-based) of ``rows`` rows as a DataFrame with columns ``CRITEO_COLUMNS``."""
        rng = np.random.default_rng([self.seed, self.SALT, index + 1])
        (dense, sparse), logit = self.draw(rng, rows)
        label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        columns = [pl.Series("label", label)]
        for name in DENSE_COLS:
            vals, missing = dense[name]
            columns.append(pl.Series(name, vals).scatter(np.flatnonzero(missing), None))
        for name in SPARSE_COLS:
            table, ids, missing = sparse[name]
            columns.append(table.gather(ids).scatter(np.flatnonzero(missing), None).alias(name))
        return pl.DataFrame(columns)


def iter_criteo_chunks(rows, seed, chunk_rows=CHUNK_ROWS, model_cls=CriteoRowModel):
    """Yield the synthetic rows as DataFrames of at most ``chunk_rows`` rows (memory: one chunk)."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    model = model_cls(seed)
    for index, start in enumerate(range(0, rows, chunk_rows)):
        yield model.chunk(index, min(chunk_rows, rows - start))


def generate_criteo_frame(rows, seed, model_cls=CriteoRowModel):
    """Return the synthetic rows as one polars DataFrame with columns ``CRITEO_COLUMNS``.

    Integer counts are Int64 with nulls for missing values; categoricals are 8-hex-digit strings or null.
    """
    return pl.concat(list(iter_criteo_chunks(rows, seed, model_cls=model_cls)))


def write_criteo_demo(path, rows, seed, progress=False, model_cls=CriteoRowModel):
    """Write ``rows`` synthetic rows in raw Criteo ``train.txt`` format to ``path`` and return ``path``.

    Streams chunk by chunk, so any row count fits in memory. A ``.gz`` suffix writes gzip (zero timestamp,
    level 6). The same (rows, seed) gives a byte-identical file. The file is written to a temporary name first
    and renamed, so a crash never leaves a truncated file behind.
    """
    from tqdm import tqdm
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as raw:
            fd = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) \
                if path.endswith(".gz") else raw
            with tqdm(total=rows, unit="row", unit_scale=True, desc="generate", disable=not progress) as bar:
                for df in iter_criteo_chunks(rows, seed, model_cls=model_cls):
                    buf = io.BytesIO()
                    df.write_csv(buf, separator="\t", include_header=False, null_value="", quote_style="never")
                    fd.write(buf.getvalue())
                    bar.update(df.height)
            if fd is not raw:
                fd.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def criteo_x1_feature_cols():
    """BARS Criteo_x1 feature settings: I1-I13 numeric (no normaliser, missing -> 0), C1-C26 categorical."""
    return [
        {"name": list(DENSE_COLS), "active": True, "dtype": "float", "type": "numeric", "fill_na": 0},
        {"name": list(SPARSE_COLS), "active": True, "dtype": "str", "type": "categorical", "fill_na": ""},
    ]


def demo_params(data_root, rows=20000, seed=2026, dataset_id="criteo_demo", raw_path="raw/criteo_demo.txt"):
    """A dataset config (as ``ensure_dataset`` takes it) for the demo: Criteo_x1 settings on generated rows."""
    return {
        "dataset_id": dataset_id,
        "data_root": data_root,
        "feature_cols": criteo_x1_feature_cols(),
        "label_col": {"name": "label", "dtype": "float"},
        "min_categr_count": 1,
        "source": {"format": "criteo_tsv", "path": raw_path, "split": "x1", "seed": 2018,
                   "generate": {"rows": rows, "seed": seed}},
    }
