import json
import os

import numpy as np
import polars as pl
import pytest

from fuxictr.features import FeatureMap
from fuxictr_deres.data import DatasetNotFoundError, ensure_dataset, read_prepared
from fuxictr_deres.data import prepare as prepare_mod
from fuxictr_deres.data.demo import DENSE_COLS, SPARSE_COLS, demo_params, generate_criteo_frame
from fuxictr_deres.data.raw_readers import column_dtypes, scan_criteo_tsv
from fuxictr_deres.data.splits import SPLITS, random_split_assignment

ROWS = 3000


def load_split(folder, split):
    return {f[:-4]: np.load(os.path.join(folder, split, f)) for f in os.listdir(os.path.join(folder, split))}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    params = demo_params(str(tmp_path_factory.mktemp("data")), rows=ROWS, seed=9, dataset_id="demo")
    return params, ensure_dataset(params)


def test_layout_and_split_sizes(demo):
    params, folder = demo
    assert folder == os.path.join(params["data_root"], "demo")
    for name in ("feature_map.json", "feature_processor.pkl", "feature_vocab.json", "prepared.json"):
        assert os.path.isfile(os.path.join(folder, name))
    info = read_prepared(folder)
    assert info["rows"] == {"train": 2100, "valid": 600, "test": 300}
    for split in SPLITS:
        arrays = load_split(folder, split)
        assert set(arrays) == set(DENSE_COLS + SPARSE_COLS + ["label"])
        assert all(len(a) == info["rows"][split] for a in arrays.values())
        assert arrays["C1"].dtype == np.int32 and arrays["I1"].dtype == np.float32
        assert arrays["label"].dtype == np.float32
        assert 0.1 < info["click_rate"][split] < 0.4
    assert info["vocab_size"]["C1"] > 2
    # no leftovers from the build
    assert sorted(os.listdir(params["data_root"])) == ["demo", "raw"]


def test_feature_map_loads_in_fuxictr(demo):
    params, folder = demo
    fmap = FeatureMap("demo", folder)
    fmap.load(os.path.join(folder, "feature_map.json"), params)
    assert list(fmap.features) == DENSE_COLS + SPARSE_COLS
    assert fmap.labels == ["label"]
    assert fmap.features["C3"]["vocab_size"] == read_prepared(folder)["vocab_size"]["C3"]


def test_ids_equal_fuxictr_transform(demo):
    params, folder = demo
    import pickle
    processor = pickle.load(open(os.path.join(folder, "feature_processor.pkl"), "rb"))
    assert processor.data_dir == folder
    raw = os.path.join(params["data_root"], params["source"]["path"])
    lf = scan_criteo_tsv(raw, column_dtypes(params["feature_cols"], params["label_col"]))
    assign = random_split_assignment(ROWS, (7, 2, 1), 2018)
    for k, split in enumerate(SPLITS):
        df = processor.preprocess(lf.filter(pl.lit(pl.Series(assign == k)))).collect()
        batch = processor.transform({c: df[c].to_list() for c in df.columns})
        ours = load_split(folder, split)
        for col in SPARSE_COLS:
            np.testing.assert_array_equal(ours[col], np.asarray(batch[col]), err_msg=f"{split}/{col}")
        for col in DENSE_COLS + ["label"]:
            np.testing.assert_array_equal(ours[col], np.asarray(batch[col], dtype=np.float32))
    # valid/test contain values unseen in train: they must map to OOV like FuxiCTR does
    oov = processor.processor_dict["C12::tokenizer"].vocab["__OOV__"]
    assert (load_split(folder, "test")["C12"] == oov).any()


def test_two_prepares_are_identical(demo, tmp_path):
    params, folder = demo
    again = ensure_dataset(dict(params, data_root=str(tmp_path)))
    assert read_prepared(again)["arrays_sha256"] == read_prepared(folder)["arrays_sha256"]
    assert read_prepared(again)["fingerprint"] == read_prepared(folder)["fingerprint"]
    for split in SPLITS:
        a, b = load_split(folder, split), load_split(again, split)
        for col in a:
            np.testing.assert_array_equal(a[col], b[col])


def test_rerun_with_same_fingerprint_is_skipped(demo, monkeypatch):
    params, folder = demo
    mtime = os.path.getmtime(os.path.join(folder, "prepared.json"))

    def boom(*args, **kwargs):
        raise AssertionError("rebuilt although up to date")

    monkeypatch.setattr(prepare_mod, "_build", boom)
    assert ensure_dataset(params) == folder
    assert os.path.getmtime(os.path.join(folder, "prepared.json")) == mtime


def test_changed_settings_rebuild_in_place(tmp_path):
    params = demo_params(str(tmp_path), rows=600, seed=1, dataset_id="d")
    folder = ensure_dataset(params)
    first = read_prepared(folder)
    changed = dict(params, min_categr_count=3)
    assert ensure_dataset(changed) == folder
    second = read_prepared(folder)
    assert second["fingerprint"] != first["fingerprint"]
    assert second["vocab_size"]["C12"] < first["vocab_size"]["C12"]
    assert sorted(os.listdir(tmp_path)) == ["d", "raw"]


def test_missing_source_names_files_and_command(tmp_path):
    params = demo_params(str(tmp_path), dataset_id="criteo")
    params["source"] = {"format": "criteo_tsv", "path": "Criteo/train.txt"}
    with pytest.raises(DatasetNotFoundError) as err:
        ensure_dataset(params)
    msg = str(err.value)
    assert os.path.join(str(tmp_path), "Criteo", "train.txt") in msg
    assert f"fuxictr-deres prepare --config CONFIG_DIR --dataset criteo --data_root {tmp_path}" in msg
    assert isinstance(err.value, FileNotFoundError)

    params["source"] = {"format": "csv", "train": "F/train.csv", "valid": "F/valid.csv", "test": "F/test.csv"}
    params["config_dir"] = "benchmark_configs"
    with pytest.raises(DatasetNotFoundError) as err:
        ensure_dataset(params)
    for split in SPLITS:
        assert os.path.join(str(tmp_path), "F", f"{split}.csv") in str(err.value)
    assert "--config benchmark_configs" in str(err.value)
    assert not os.path.exists(os.path.join(str(tmp_path), "criteo"))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interruption_mid_build_leaves_nothing(tmp_path, monkeypatch, error):
    """An exception or Ctrl-C while the valid split is being written leaves no dataset folder behind, and the
    previous complete copy (if any) stays."""
    from fuxictr_deres.data import column_files
    params = demo_params(str(tmp_path), rows=500, seed=1, dataset_id="d")
    real = column_files.ColumnFiles.append

    def failing(self, name, values):
        if self.folder.endswith("valid"):
            raise error("injected")
        return real(self, name, values)

    monkeypatch.setattr(column_files.ColumnFiles, "append", failing)
    with pytest.raises(error, match="injected"):
        ensure_dataset(params)
    assert sorted(os.listdir(tmp_path)) == ["raw"]
    monkeypatch.setattr(column_files.ColumnFiles, "append", real)
    folder = ensure_dataset(params)
    before = read_prepared(folder)
    monkeypatch.setattr(column_files.ColumnFiles, "append", failing)
    with pytest.raises(error):
        ensure_dataset(params, force=True)
    assert sorted(os.listdir(tmp_path)) == ["d", "raw"]
    assert read_prepared(folder) == before


def test_killed_build_is_cleaned_up_next_time(tmp_path):
    """A build killed outright leaves only a hidden temporary folder, removed by the next build."""
    params = demo_params(str(tmp_path), rows=300, seed=1, dataset_id="d")
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".d.building-{int(dead.stdout)}-abcdef12"
    (stale / "train").mkdir(parents=True)
    (stale / "train" / "label.npy").write_bytes(b"half")
    ensure_dataset(params)
    assert sorted(os.listdir(tmp_path)) == ["d", "raw"]


def test_prepared_copy_survives_deleting_raw_files(tmp_path):
    params = demo_params(str(tmp_path), rows=500, seed=1, dataset_id="d")
    params["source"].pop("generate")
    with pytest.raises(DatasetNotFoundError):
        ensure_dataset(params)
    from fuxictr_deres.data.demo import write_criteo_demo
    raw = write_criteo_demo(os.path.join(str(tmp_path), params["source"]["path"]), 500, 1)
    folder = ensure_dataset(params)
    os.remove(raw)
    assert ensure_dataset(params) == folder


def _write_csvs(root, gz_valid=False):
    df = generate_criteo_frame(900, 4).select(["label", "C1", "C2", "C3", "I1"]).rename(
        {"C1": "user", "C2": "item", "C3": "daytime", "I1": "count"})
    os.makedirs(os.path.join(root, "F"))
    parts = {"train": df[:600], "valid": df[600:800], "test": df[800:]}
    for split, part in parts.items():
        path = os.path.join(root, "F", f"{split}.csv")
        if split == "valid" and gz_valid:
            import gzip
            with gzip.open(path + ".gz", "wb") as fd:
                part.write_csv(fd)
        else:
            part.write_csv(path)
    return parts


def test_csv_source_with_gz_fallback(tmp_path):
    parts = _write_csvs(str(tmp_path), gz_valid=True)
    params = {
        "dataset_id": "frappe_like", "data_root": str(tmp_path),
        "feature_cols": [{"name": ["user", "item", "daytime"], "active": True, "dtype": "str",
                          "type": "categorical"},
                         {"name": "count", "active": True, "dtype": "float", "type": "numeric"}],
        "label_col": {"name": "label", "dtype": "float"},
        "source": {"format": "csv", "train": "F/train.csv", "valid": "F/valid.csv", "test": "F/test.csv"},
    }
    folder = ensure_dataset(params)
    info = read_prepared(folder)
    assert info["rows"] == {"train": 600, "valid": 200, "test": 100}
    valid = load_split(folder, "valid")
    np.testing.assert_array_equal(valid["label"], parts["valid"]["label"].to_numpy().astype(np.float32))
    np.testing.assert_array_equal(valid["count"], parts["valid"]["count"].fill_null(0).to_numpy().astype(np.float32))


def test_bucketing_processor_matches_fuxictr(tmp_path):
    """Criteo_x4-style settings: I* bucketed by CustomizedFeatureProcessor.convert_to_bucket, min count 2."""
    params = demo_params(str(tmp_path), rows=1500, seed=3, dataset_id="x4")
    params["feature_cols"] = [
        {"name": DENSE_COLS, "active": True, "dtype": "float", "type": "categorical",
         "preprocess": "convert_to_bucket", "fill_na": 0},
        {"name": SPARSE_COLS, "active": True, "dtype": "str", "type": "categorical", "fill_na": ""},
    ]
    params["min_categr_count"] = 2
    params["feature_processor"] = "criteo"
    folder = ensure_dataset(params)
    import pickle
    processor = pickle.load(open(os.path.join(folder, "feature_processor.pkl"), "rb"))
    assert type(processor).__module__ == "fuxictr.datasets.criteo"
    raw = os.path.join(params["data_root"], params["source"]["path"])
    lf = scan_criteo_tsv(raw, column_dtypes(params["feature_cols"], params["label_col"]))
    assign = random_split_assignment(1500, (7, 2, 1), 2018)
    df = processor.preprocess(lf.filter(pl.lit(pl.Series(assign == 1)))).collect()
    batch = processor.transform({c: df[c].to_list() for c in df.columns})
    ours = load_split(folder, "valid")
    for col in DENSE_COLS + SPARSE_COLS:
        np.testing.assert_array_equal(ours[col], np.asarray(batch[col]), err_msg=col)
    assert json.load(open(os.path.join(folder, "feature_map.json")))["features"][0]["I1"]["type"] == "categorical"
