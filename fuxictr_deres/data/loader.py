"""A seeded, memory-mapped batch loader for prepared datasets (``prepare.py`` layout).

FuxiCTR 2.3.10's parquet/csv loaders shuffle through Ray without a seed, so runs do not repeat. This loader plugs
into ``fuxictr.pytorch.dataloaders.RankDataLoader(..., data_loader=SeededDataLoader)`` and draws each epoch's order
from ``numpy.random.default_rng([seed, epoch])``: runs repeat bit for bit and epochs differ.
"""
import logging
import os

import numpy as np
import torch


class SeededDataLoader(object):
    """Iterate ``dict[str, torch.Tensor]`` batches over ``<data_path>/<column>.npy`` files.

    Args:
        feature_map: FuxiCTR ``FeatureMap``; batches hold every ``feature_map.features`` column plus the labels.
        data_path: a split folder, e.g. ``<data_root>/<dataset_id>/train``.
        split: ``"train"``, ``"valid"`` or ``"test"`` (only the train split is sharded unless ``shard_eval``).
        batch_size, shuffle: as in FuxiCTR's loaders.
        seed: base seed of the epoch permutations (default 2026).
        rank, world_size: shard each epoch's order into ``world_size`` disjoint strided slices.
        shard_eval: also shard valid/test (default False: every rank sees the whole evaluation split).
        drop_last: drop the last incomplete batch (default False).
        Unknown keyword arguments (the rest of an expid config) are ignored.
    """

    def __init__(self, feature_map, data_path, split="train", batch_size=32, shuffle=False, seed=2026,
                 rank=0, world_size=1, shard_eval=False, drop_last=False, **kwargs):
        self.feature_map = feature_map
        self.data_path = data_path
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = 2026 if seed is None else int(seed)
        self.world_size = int(world_size or 1)
        self.rank = int(rank or 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank={self.rank} must be in [0, world_size={self.world_size})")
        self.sharded = self.world_size > 1 and (split == "train" or shard_eval)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

        self.columns = list(feature_map.features.keys()) + list(feature_map.labels)
        self.label_set = set(feature_map.labels)
        self.arrays = {}
        for col in self.columns:
            path = os.path.join(data_path, f"{col}.npy")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: the prepared split {data_path} has no column {col!r} "
                                        "(prepare the dataset again with the same config)")
            self.arrays[col] = np.load(path, mmap_mode="r")
        lengths = {col: len(arr) for col, arr in self.arrays.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{data_path}: columns have different row counts: {lengths}")
        self.total_samples = next(iter(lengths.values())) if lengths else 0
        self.num_samples = len(range(self.rank, self.total_samples, self.world_size)) if self.sharded \
            else self.total_samples
        self.num_blocks = 1
        if self.drop_last:
            self.num_batches = self.num_samples // self.batch_size
        else:
            self.num_batches = -(-self.num_samples // self.batch_size)
        logging.debug("SeededDataLoader %s: %d samples, %d batches", data_path, self.num_samples, self.num_batches)

    def __len__(self):
        return self.num_batches

    def set_epoch(self, epoch):
        """Make the next ``__iter__`` use ``epoch`` (e.g. when resuming)."""
        self.epoch = int(epoch)

    def epoch_order(self, epoch):
        """Row indices this rank visits in ``epoch``, in visiting order."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.total_samples)
        else:
            order = np.arange(self.total_samples)
        if self.sharded:
            order = order[self.rank::self.world_size]
        return order

    def _batch(self, idx):
        batch = {}
        for col in self.columns:
            arr = self.arrays[col]
            if isinstance(idx, slice):
                values = np.array(arr[idx])
            else:
                values = arr[idx]  # fancy indexing copies out of the memory map
            if col not in self.label_set and values.dtype.kind in "iu":
                values = values.astype(np.int64)
            batch[col] = torch.from_numpy(values)
        return batch

    def __iter__(self):
        order = self.epoch_order(self.epoch)
        self.epoch += 1
        contiguous = not self.shuffle and not self.sharded
        for b in range(self.num_batches):
            start, stop = b * self.batch_size, min((b + 1) * self.batch_size, len(order))
            if contiguous:
                yield self._batch(slice(start, stop))
            else:
                # sorted indices read the memory maps in file order; the batch's row set is unchanged
                yield self._batch(np.sort(order[start:stop]))
