"""A positive control for DeRes: synthetic rows in the raw Criteo schema whose label needs what DeRes claims to add.

The rows (I1..I13 heavy-tailed counts, C1..C26 power-law hex ids, missing values, 25% clicks) come from the demo
generator's machinery (``demo.CriteoRowModel``) with its own random stream; only the label model differs.

Label model (logit of the click probability; ``b`` solved for a 25% click rate)::

    z = b + sum_{f in C1,C2,C3} e_f[c_f]                     (1) first order, strong: e_f ~ N(0, 1)
          + GAMMA * e_8[c_8] * phi(I3)                        (2) an interest that goes stale
          + KAPPA * s_4[c_4] * s_5[c_5] * s_17[c_17]          (3) third-order parity, random signs s = +-1
    phi = +1 if bucket(I3) <= m (fresh), -RHO otherwise (stale)

``bucket`` is the log-squared bucket of FuxiCTR's Criteo processor (x > 2: floor(ln(x)^2), else int(x); missing
-> 0), so the freshness is exactly observable as one categorical value; ``m`` is the median bucket (about half the
rows are fresh). GAMMA = 1.2, RHO = 0.5, KAPPA = 1.0.

Why cross-layer recall should help here (the model: X0 = tokens, L = 8 Pre-Norm layers = 16 units,
y_L = X0 + sum_u o_u, head = MLP(flatten(RMSNorm(y_L)))):

* (1) lives in X0. Pre-Norm hands it to the head as X0 / rms(y_L): once 16 unit outputs have accumulated, its
  share of the stream shrinks and is rescaled per sample by whatever the units wrote, i.e. the strongest term
  arrives with multiplicative noise. DeRes' final read ``h = (g y + (1 - g) sum_j alpha_j b_j) / g0`` can weight
  b_0 = X0 per dimension and restore its share before the final norm.
* (2) needs ``e_8 * phi``: the same interest embedding is useful for fresh rows and must be reversed for stale
  ones. The identity path adds X0 with weight 1 for every row (it cannot forget); an FFN or attention unit has to
  build the product and the raw e_8 stays in the stream. A DeRes read weights each block by
  ``alpha_j = SiLU(tau <w, RMSNorm(b_j)>)``, a function of the block's own content per token, so it computes
  ``SiLU(tau w.k(X0_t)) * X0_t``: X0 gated by its own (freshness) content (AutoSplit mixes every field into
  every token), with weights down to -0.28, i.e. a per-row, per-token forgetting of the stale interest at every
  unit and at the final read. X0's effective weight in dimension i is ``(g_i + (1 - g_i) alpha_0) / g0``, so the
  per-dimension gate can confine the forgetting to the dimensions that carry e_8 (and reverse it where g_i -> 0).
* (3) needs depth, so the stack does real work and its outputs do accumulate (what makes (1) bite). The signs
  are random, so under the power-law value distributions E[s] != 0 and the parity leaks into its pairs
  (E[s4 s5 s17 | s4, s5] = s4 s5 E[s17]): a lower-order path that makes it learnable. With balanced signs
  (E[s] ~ 0, a pure third-order term; tried on one seed) neither DeRes nor OneTrans learnt it within the schedule
  (test AUC 0.807 / 0.809 against 0.820 for the true logit without it), so it was only label noise.

Where the argument is weak: nothing here is beyond Pre-Norm's reach. The head MLP can undo a per-sample scale and
build the product in (2), and the units can learn to keep their outputs small; RMSNorm(y_L) loses no information
about X0 that an MLP cannot recover. DeRes can at best learn the same function faster (fewer rows, fewer epochs),
so a tie here weakens but does not refute the implementation, and a loss would be a real warning.
"""
from typing import Optional

import numpy as np

from .demo import (CHUNK_ROWS, DENSE_COLS, SPARSE_COLS, _CARDINALITY, _DENSE_MISSING, CriteoRowModel,
                   iter_criteo_chunks, write_criteo_demo)

FIRST_ORDER = ("C1", "C2", "C3")
INTEREST, FRESHNESS = "C8", "I3"
PARITY = ("C4", "C5", "C17")
GAMMA, RHO, KAPPA = 1.2, 0.5, 1.0
_FRESHNESS_ROWS = 100000


def criteo_bucket(counts: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """FuxiCTR's Criteo bucket of counts (missing filled with 0): x > 2 -> floor(ln(x)^2), else int(x)."""
    x = np.where(missing, 0, counts).astype(np.float64)
    return np.where(x > 2, np.floor(np.log(np.maximum(x, 1.0)) ** 2), np.trunc(x)).astype(np.int64)


class ControlRowModel(CriteoRowModel):
    """The demo rows with the control label model of the module docstring."""

    SALT = 20261

    def plant(self, rng: np.random.Generator) -> None:
        card = {name: _CARDINALITY[SPARSE_COLS.index(name)] for name in FIRST_ORDER + (INTEREST,) + PARITY}
        self.first_order = {name: rng.normal(0.0, 1.0, card[name]) for name in FIRST_ORDER}
        self.interest = rng.normal(0.0, 1.0, card[INTEREST])
        self.signs = {name: rng.choice([-1.0, 1.0], card[name]) for name in PARITY}
        # median freshness bucket, from a side stream (chunk streams use indices 1, 2, ...)
        side = np.random.default_rng([self.seed, self.SALT, 1 << 30])
        j = DENSE_COLS.index(FRESHNESS)
        mu, sigma = self.dense[j]
        counts = np.maximum(np.floor(np.exp(side.normal(mu, sigma, _FRESHNESS_ROWS))).astype(np.int64) - 1, 0)
        self.fresh_max = int(np.median(criteo_bucket(counts, side.random(_FRESHNESS_ROWS) < _DENSE_MISSING[j])))

    def freshness(self, dense: dict) -> np.ndarray:
        """phi per row: +1 fresh (bucket(I3) <= median bucket), -RHO stale."""
        return np.where(criteo_bucket(*dense[FRESHNESS]) <= self.fresh_max, 1.0, -RHO)

    def terms(self, dense: dict, sparse: dict) -> dict:
        """The three planted terms of the logit per row: first_order, stale_interest, parity."""
        first = sum(effect[sparse[name][1]] for name, effect in self.first_order.items())
        interest = GAMMA * self.interest[sparse[INTEREST][1]] * self.freshness(dense)
        parity = KAPPA * np.prod([s[sparse[name][1]] for name, s in self.signs.items()], axis=0)
        return {"first_order": first, "stale_interest": interest, "parity": parity}

    def signal(self, dense: dict, sparse: dict) -> np.ndarray:
        logit = np.full(len(dense[FRESHNESS][0]), self.intercept)
        for term in self.terms(dense, sparse).values():
            logit += term
        return logit


def write_criteo_control(path: str, rows: int, seed: int, progress: bool = False) -> str:
    """Write ``rows`` control rows in raw Criteo ``train.txt`` format (byte-identical per (rows, seed))."""
    return write_criteo_demo(path, rows, seed, progress=progress, model_cls=ControlRowModel)


def iter_control_chunks(rows: int, seed: int, chunk_rows: Optional[int] = None):
    """Yield the control rows as DataFrames (see ``demo.iter_criteo_chunks``)."""
    kwargs = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
    return iter_criteo_chunks(rows, seed, model_cls=ControlRowModel, **kwargs)


def true_logits(rows: int, seed: int) -> np.ndarray:
    """The planted logit z of every row ``write_criteo_control(path, rows, seed)`` writes, in file order: the Bayes
    score, whose AUC on a split is the most any model can reach there."""
    model = ControlRowModel(seed)
    parts = []
    for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
        rng = np.random.default_rng([model.seed, model.SALT, index + 1])      # the stream of ``chunk(index)``
        parts.append(model.draw(rng, min(CHUNK_ROWS, rows - start))[1])
    return np.concatenate(parts)
