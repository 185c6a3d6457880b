"""A seeded, memory-mapped batch loader for prepared datasets (``prepare.py`` layout).

FuxiCTR 2.3.10's parquet/csv loaders shuffle through Ray without a seed, so runs do not repeat. This loader plugs
into ``fuxictr.pytorch.dataloaders.RankDataLoader(..., data_loader=SeededDataLoader)`` and draws each epoch's order
from ``numpy.random.default_rng([seed, epoch])``: runs repeat bit for bit and epochs differ.

Memory: columns are memory-mapped ``.npy`` files (int32 ids, float32 numerics) and read one chunk at a time.
A split of at most ``chunk_rows`` rows is shuffled exactly (one uniform permutation). A larger split is shuffled
at two levels: its ``block_rows``-row blocks are permuted, consecutive permuted blocks form a chunk that is read
(block by block, sequentially) into memory, and the chunk's rows are permuted. So at most ``chunk_rows`` rows are
materialised at once, whatever the split size, and every row is still visited exactly once per epoch.

Several processes (torch.distributed): every rank draws the SAME epoch order (the seed does not depend on the rank)
and takes the positions ``rank, rank + W, rank + 2W, ...`` of it (W = world size), so the shards are disjoint and
batch ``b`` of all ranks together is batch ``b`` of a one-process run with a W-times larger batch. DDP needs every
rank to take the same number of steps, so a sharded train split gives each rank exactly ``n // W`` rows: the last
``n % W`` (< W) positions of each epoch's order are left out that epoch (a different few each epoch, as
``DistributedSampler(drop_last=True)``). Evaluation splits (``shard_eval``) keep every row (ranks differ by at most
one row; evaluation has no collective per batch) and ``ddp_training.interleave`` restores file order.
"""
import logging
import os

import numpy as np
import torch

DEFAULT_CHUNK_ROWS = 1 << 21
DEFAULT_BLOCK_ROWS = 1 << 14


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
        loader_chunk_rows: rows materialised at once (default 2**21); loader_block_rows: rows per shuffled
            block of a split larger than a chunk (default 2**14).
        Unknown keyword arguments (the rest of an expid config) are ignored.
    """

    def __init__(self, feature_map, data_path, split="train", batch_size=32, shuffle=False, seed=2026,
                 rank=0, world_size=1, shard_eval=False, drop_last=False, loader_chunk_rows=None,
                 loader_block_rows=None, **kwargs):
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
        self.chunk_rows = int(loader_chunk_rows or DEFAULT_CHUNK_ROWS)
        self.block_rows = min(int(loader_block_rows or DEFAULT_BLOCK_ROWS), self.chunk_rows)
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
        if not self.sharded:
            self.num_samples = self.total_samples
        elif split == "train":
            self.num_samples = self.total_samples // self.world_size   # equal steps on every rank (see above)
        else:
            self.num_samples = len(range(self.rank, self.total_samples, self.world_size))
        # global positions of the epoch order this rank's stride runs over
        self.visited = self.num_samples * self.world_size if self.sharded and split == "train" \
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

    def _chunk_plan(self, epoch):
        """Yield ``(ranges, perm)`` per chunk: sorted row ranges to read and the permutation of the read rows
        (None: keep file order)."""
        n = self.total_samples
        if not self.shuffle:
            for start in range(0, n, self.chunk_rows):
                yield [(start, min(start + self.chunk_rows, n))], None
            return
        rng = np.random.default_rng([self.seed, int(epoch)])
        if n <= self.chunk_rows:
            yield [(0, n)], rng.permutation(n)
            return
        blocks = rng.permutation(-(-n // self.block_rows))
        per_chunk = max(1, self.chunk_rows // self.block_rows)
        for i in range(0, len(blocks), per_chunk):
            chosen = np.sort(blocks[i:i + per_chunk])
            ranges = [(int(b) * self.block_rows, min((int(b) + 1) * self.block_rows, n)) for b in chosen]
            yield ranges, rng.permutation(sum(stop - start for start, stop in ranges))

    def _chunks(self, epoch):
        """Yield ``(row ids, selection)`` per chunk: the chunk's row ids in read order and the positions of this
        rank's rows in visiting order."""
        position = 0  # global position in the epoch order, for the (rank, world size) stride
        for ranges, perm in self._chunk_plan(epoch):
            rows = np.concatenate([np.arange(start, stop) for start, stop in ranges])
            select = np.arange(len(rows)) if perm is None else perm
            if self.sharded:
                stop = max(0, min(len(rows), self.visited - position))
                select = select[(self.rank - position) % self.world_size:stop:self.world_size]
            position += len(rows)
            yield ranges, rows, select

    def epoch_order(self, epoch):
        """Row indices this rank visits in ``epoch``, in visiting order."""
        parts = [rows[select] for _, rows, select in self._chunks(epoch)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _read(self, ranges, select):
        """This rank's rows of one chunk, in visiting order: ``{column: np.ndarray}`` (sequential reads)."""
        out = {}
        for col in self.columns:
            arr = self.arrays[col]
            if len(ranges) == 1:
                data = np.array(arr[ranges[0][0]:ranges[0][1]])
            else:
                data = np.concatenate([arr[start:stop] for start, stop in ranges])
            if col not in self.label_set and data.dtype.kind in "iu":
                data = data.astype(np.int64)
            out[col] = data[select]
        return out

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        pending, emitted = None, 0
        for ranges, _, select in self._chunks(epoch):
            chunk = self._read(ranges, select)
            if pending is not None:
                chunk = {c: np.concatenate([pending[c], chunk[c]]) for c in self.columns}
                pending = None
            size = len(chunk[self.columns[0]]) if self.columns else 0
            start = 0
            while size - start >= self.batch_size and emitted < self.num_batches:
                yield {c: torch.from_numpy(chunk[c][start:start + self.batch_size]) for c in self.columns}
                start += self.batch_size
                emitted += 1
            if start < size:
                pending = {c: chunk[c][start:] for c in self.columns}
        if pending is not None and emitted < self.num_batches:
            yield {c: torch.from_numpy(np.ascontiguousarray(pending[c])) for c in self.columns}
