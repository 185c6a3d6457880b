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


def stratified_folds(labels: np.ndarray, n_folds: int = 10, seed: int = 2018) -> np.ndarray:
    """int8 fold of each row, equal to ``sklearn.model_selection.StratifiedKFold(n_folds, shuffle=True,
    random_state=seed)``'s test folds (the BARS x4 protocol), with one byte per row instead of int64 copies.

    Classes are numbered by first appearance and each fold gets its round-robin share of every class, so the
    label rate of the folds differs by at most one row's rounding.
    """
    labels = np.asarray(labels)
    classes, first = np.unique(labels, return_index=True)
    if len(labels) < n_folds:
        raise ValueError(f"{len(labels)} rows cannot be split into {n_folds} folds")
    order = classes[np.argsort(first)]  # by order of appearance, as sklearn encodes them
    counts = [int((labels == c).sum()) for c in order]
    rng = np.random.RandomState(int(seed))
    folds = np.empty(len(labels), dtype=np.int8)
    start = 0  # sklearn deals the sorted encoded labels round robin over the folds
    for c, count in zip(order, counts):
        per_fold = [len(range(i, start + count, n_folds)) - len(range(i, start, n_folds)) for i in range(n_folds)]
        fold_of = np.arange(n_folds, dtype=np.int8).repeat(per_fold)
        rng.shuffle(fold_of)
        folds[labels == c] = fold_of
        start += count
    return folds


def x4_split_assignment(labels: np.ndarray, seed: int = 2018) -> np.ndarray:
    """uint8 split of each row for the BARS x4 layout: stratified 10-fold, fold 0 = test, fold 1 = valid."""
    folds = stratified_folds(labels, 10, seed)
    assign = np.full(len(folds), TRAIN, dtype=np.uint8)
    assign[folds == 0] = TEST
    assign[folds == 1] = VALID
    return assign
