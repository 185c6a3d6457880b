import os

import numpy as np
import pytest
import torch

from fuxictr.features import FeatureMap
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr_deres.data import SeededDataLoader, ensure_dataset
from fuxictr_deres.data.demo import DENSE_COLS, SPARSE_COLS, demo_params

BATCH = 128


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    params = demo_params(str(tmp_path_factory.mktemp("data")), rows=1000, seed=5, dataset_id="demo")
    folder = ensure_dataset(params)
    fmap = FeatureMap("demo", folder)
    fmap.load(os.path.join(folder, "feature_map.json"), params)
    return fmap, folder


def make(prepared, split="train", **kwargs):
    fmap, folder = prepared
    kwargs.setdefault("batch_size", BATCH)
    kwargs.setdefault("shuffle", True)
    return SeededDataLoader(fmap, os.path.join(folder, split), split=split, **kwargs)


def test_through_rank_data_loader(prepared):
    fmap, folder = prepared
    params = {"seed": 7, "verbose": 1, "model_root": "x", "embedding_dim": 4}  # a config's unrelated keys
    train, valid, test = RankDataLoader(fmap, "both", train_data=os.path.join(folder, "train"),
                                        valid_data=os.path.join(folder, "valid"),
                                        test_data=os.path.join(folder, "test"), batch_size=BATCH, shuffle=True,
                                        data_loader=SeededDataLoader, **params)
    assert (train.num_samples, valid.num_samples, test.num_samples) == (700, 200, 100)
    assert train.num_blocks == 1 and len(train) == train.num_batches == 6
    assert train.shuffle and not valid.shuffle and train.seed == 7
    batch = next(iter(train))
    assert list(batch) == DENSE_COLS + SPARSE_COLS + ["label"]
    for col in SPARSE_COLS:
        assert batch[col].dtype == torch.int64 and batch[col].shape == (BATCH,)
    for col in DENSE_COLS:
        assert batch[col].dtype == torch.float32 and batch[col].shape == (BATCH,)
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (BATCH,)
    sizes = [len(b["label"]) for b in train]
    assert sum(sizes) == 700 and sizes[-1] == 700 - 5 * BATCH


def test_fuxictr_embedding_accepts_batches(prepared):
    from fuxictr.pytorch.layers import FeatureEmbedding
    fmap, _ = prepared
    emb = FeatureEmbedding(fmap, 4)
    batch = next(iter(make(prepared)))
    batch.pop("label")  # BaseModel.get_inputs drops the labels before the embedding
    out = emb(batch)
    assert out.shape == (BATCH, len(fmap.features), 4)


def test_epochs_differ_and_runs_repeat(prepared):
    a, b = make(prepared, seed=3), make(prepared, seed=3)
    epochs_a = [[x["label"].clone() for x in a] for _ in range(2)]
    epochs_b = [[x["label"].clone() for x in b] for _ in range(2)]
    for ea, eb in zip(epochs_a, epochs_b):
        for x, y in zip(ea, eb):
            assert torch.equal(x, y)
    first_a = make(prepared, seed=3)
    batches0 = [x["C12"].clone() for x in first_a]
    batches1 = [x["C12"].clone() for x in first_a]
    assert not all(torch.equal(x, y) for x, y in zip(batches0, batches1))
    other_seed = [x["C12"].clone() for x in make(prepared, seed=4)]
    assert not all(torch.equal(x, y) for x, y in zip(batches0, other_seed))


def test_two_loaders_identical_batches(prepared):
    a, b = make(prepared, seed=11), make(prepared, seed=11)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k])


def test_shuffle_false_preserves_order(prepared):
    fmap, folder = prepared
    loader = make(prepared, split="valid", shuffle=False)
    stored = {c: np.load(os.path.join(folder, "valid", f"{c}.npy")) for c in ["C1", "I2", "label"]}
    got = {c: torch.cat([b[c] for b in loader]).numpy() for c in stored}
    for c in stored:
        np.testing.assert_array_equal(got[c], stored[c])
    # and a second pass is the same
    np.testing.assert_array_equal(torch.cat([b["C1"] for b in loader]).numpy(), stored["C1"])


def test_each_epoch_covers_every_row_once(prepared):
    loader = make(prepared, seed=2)
    for epoch in range(2):
        order = loader.epoch_order(epoch)
        assert sorted(order.tolist()) == list(range(700))
    assert not np.array_equal(loader.epoch_order(0), loader.epoch_order(1))


@pytest.mark.parametrize("world_size", [2, 3])
def test_sharding_is_disjoint_and_complete(prepared, world_size):
    """Every rank strides over ONE seeded order: the shards are disjoint, each rank gets n // W rows (equal steps:
    DDP needs them), and only the last n % W positions of each epoch's order are left out."""
    one = make(prepared, seed=5)
    shards = [make(prepared, seed=5, rank=r, world_size=world_size) for r in range(world_size)]
    kept = (700 // world_size) * world_size
    for epoch in range(2):
        order = one.epoch_order(epoch)
        orders = [s.epoch_order(epoch) for s in shards]
        for rank, part in enumerate(orders):
            np.testing.assert_array_equal(part, order[rank:kept:world_size])
        allrows = np.concatenate(orders)
        assert len(allrows) == kept and len(np.unique(allrows)) == kept
        assert sorted(np.concatenate([allrows, order[kept:]]).tolist()) == list(range(700))
    assert {s.num_samples for s in shards} == {700 // world_size}
    assert len({len(s) for s in shards}) == 1 and all(len(list(s)) == len(s) for s in shards)
    # valid is not sharded unless asked; sharded, it keeps every row (ranks differ by at most one)
    assert make(prepared, split="valid", shuffle=False, rank=1, world_size=world_size).num_samples == 200
    sizes = [make(prepared, split="valid", shuffle=False, rank=r, world_size=world_size, shard_eval=True).num_samples
             for r in range(world_size)]
    assert sum(sizes) == 200 and max(sizes) - min(sizes) <= 1


def test_ranks_batches_together_are_the_one_process_batch(prepared):
    """Batch b of W ranks with batch B/W holds the rows of batch b of one process with batch B (same seed)."""
    one = list(make(prepared, seed=3, batch_size=100))
    ranks = [list(make(prepared, seed=3, batch_size=50, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(one) == 7
    for b, whole in enumerate(one):
        for col in ("C12", "I3", "label"):
            joined = torch.stack([ranks[0][b][col], ranks[1][b][col]], dim=1).reshape(-1)
            assert torch.equal(joined, whole[col])


def test_set_epoch_and_missing_column(prepared, tmp_path):
    a, b = make(prepared, seed=1), make(prepared, seed=1)
    list(a)
    b.set_epoch(1)
    assert torch.equal(next(iter(a))["label"], next(iter(b))["label"])
    fmap, _ = prepared
    with pytest.raises(FileNotFoundError, match="I1.npy"):
        SeededDataLoader(fmap, str(tmp_path), split="train", batch_size=4, shuffle=True)


@pytest.mark.parametrize("world_size", [1, 3])
def test_large_split_is_read_in_chunks(prepared, world_size, monkeypatch):
    """A split larger than loader_chunk_rows is block-shuffled: never more than a chunk is read into memory,
    every row is still visited once per epoch, epochs differ and runs repeat."""
    fmap, folder = prepared
    stored = {c: np.load(os.path.join(folder, "train", f"{c}.npy")) for c in ("label", "C12", "I3")}
    read_sizes = []
    real = SeededDataLoader._read

    def spy(self, ranges, select):
        read_sizes.append(sum(stop - start for start, stop in ranges))
        return real(self, ranges, select)

    monkeypatch.setattr(SeededDataLoader, "_read", spy)
    kw = dict(seed=8, loader_chunk_rows=128, loader_block_rows=16, world_size=world_size)
    shards = [make(prepared, rank=r, **kw) for r in range(world_size)]
    assert all(isinstance(a, np.memmap) for a in shards[0].arrays.values())
    single = make(prepared, **dict(kw, world_size=1))
    kept = (700 // world_size) * world_size
    seen = []
    for epoch in range(2):
        orders = [s.epoch_order(epoch) for s in shards]
        allrows = np.concatenate(orders)
        for rank, part in enumerate(orders):     # chunked: still strides over the one-process order
            np.testing.assert_array_equal(part, single.epoch_order(epoch)[rank:kept:world_size])
        assert len(np.unique(allrows)) == kept
        seen.append(allrows)
        for shard, order in zip(shards, orders):
            batches = list(shard)
            assert len(batches) == shard.num_batches
            assert all(len(b["label"]) == BATCH for b in batches[:-1])
            for col in stored:
                got = torch.cat([b[col] for b in batches]).numpy()
                np.testing.assert_array_equal(got, stored[col][order].astype(got.dtype))
    assert not np.array_equal(seen[0], seen[1])
    assert max(read_sizes) <= 128
    again = [make(prepared, rank=r, **kw).epoch_order(1) for r in range(world_size)]
    np.testing.assert_array_equal(np.concatenate(again), seen[1])
