"""Seeded train/valid/test assignment of rows (the x1-style random split)."""
import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
SPLITS = ("train", "valid", "test")


def split_sizes(n, ratios=(7, 2, 1)):
    """Row counts (train, valid, test) for ``n`` rows split by ``ratios``; train takes the rounding remainder."""
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(f"split ratios must be three non-negative numbers, got {ratios!r}")
    total = float(sum(ratios))
    n_valid = int(n * ratios[1] / total)
    n_test = int(n * ratios[2] / total)
    return n - n_valid - n_test, n_valid, n_test


def random_split_assignment(n, ratios=(7, 2, 1), seed=2018):
    """uint8 array of length ``n``: 0 = train, 1 = valid, 2 = test, from one seeded permutation.

    Rows keep their original file order inside each split.
    """
    n_train, n_valid, _ = split_sizes(n, ratios)
    perm = np.random.default_rng(int(seed)).permutation(n)
    assign = np.full(n, TEST, dtype=np.uint8)
    assign[perm[:n_train]] = TRAIN
    assign[perm[n_train:n_train + n_valid]] = VALID
    return assign
