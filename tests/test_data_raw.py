"""Raw Criteo/Avazu input: bad rows (file + line in the message), skipping, x4 stratified splits, Avazu settings."""
import gzip
import os
import pickle

import numpy as np
import polars as pl
import pytest

from fuxictr_deres.data import ensure_dataset, read_prepared
from fuxictr_deres.data.build import AVAZU_COLUMNS
from fuxictr_deres.data.demo import demo_params, write_criteo_demo
from fuxictr_deres.data.raw_chunks import BadInputError
from fuxictr_deres.data.splits import SPLITS, stratified_folds


def _criteo_params(root, rows=400, **source):
    params = demo_params(str(root), rows=rows, seed=2, dataset_id="c")
    params["source"].pop("generate")
    params["source"].update(source)
    write_criteo_demo(os.path.join(str(root), params["source"]["path"]), rows, 2)
    return params


def _corrupt(path, line_no, transform):
    lines = open(path).read().split("\n")
    lines[line_no - 1] = transform(lines[line_no - 1])
    open(path, "w").write("\n".join(lines))


def _set_field(k, value):
    def transform(line):
        fields = line.split("\t")
        fields[k] = value
        return "\t".join(fields)
    return transform


@pytest.mark.parametrize("transform, expected", [
    (lambda line: line + "\textra", r"line 57: expected 40 TAB-separated fields \(label, I1..I13, C1..C26\), found 41"),
    (lambda line: line.rsplit("\t", 1)[0], "line 57: expected 40 TAB-separated fields .*found 39"),
    (_set_field(3, "1.5"), "line 57: field I3 is '1.5', expected an integer count"),
    (_set_field(5, "abc"), "line 57: field I5 is 'abc', expected an integer count"),
    (_set_field(0, "2"), "line 57: field label is '2', expected a label 0 or 1"),
    (_set_field(0, ""), "line 57: field label is None, expected a label 0 or 1"),
])
def test_bad_criteo_row_names_file_and_line(tmp_path, transform, expected):
    params = _criteo_params(tmp_path)
    raw = os.path.join(str(tmp_path), params["source"]["path"])
    _corrupt(raw, 57, transform)
    with pytest.raises(BadInputError, match=expected) as err:
        ensure_dataset(params)
    assert str(err.value).startswith(f"{raw}, line 57")
    assert sorted(os.listdir(tmp_path)) == ["raw"]


def test_bad_row_in_gzip_file_and_late_block(tmp_path):
    params = _criteo_params(tmp_path, rows=3000)
    raw = os.path.join(str(tmp_path), params["source"]["path"])
    _corrupt(raw, 2999, _set_field(0, "yes"))
    with open(raw, "rb") as src, gzip.open(raw + ".gz", "wb") as dst:
        dst.write(src.read())
    os.remove(raw)
    from fuxictr_deres.data import raw_chunks
    from fuxictr_deres.data.build import raw_layout
    layout = raw_layout("criteo_tsv", raw + ".gz", {}, "label")
    with pytest.raises(BadInputError, match=r"\.gz, line 2999: field label is 'yes'"):
        list(raw_chunks.iter_raw_frames(layout, block_bytes=4096))  # many small blocks: line numbers carry over


def test_skip_bad_rows_counts_them(tmp_path):
    params = _criteo_params(tmp_path, rows=400)
    raw = os.path.join(str(tmp_path), params["source"]["path"])
    _corrupt(raw, 10, lambda line: line + "\tx")
    _corrupt(raw, 20, _set_field(2, "-3.2"))
    _corrupt(raw, 30, _set_field(0, "7"))
    with open(raw, "a") as fd:
        fd.write("\n\n")  # empty lines are not rows
    folder = ensure_dataset(params, skip_bad_rows=True)
    info = read_prepared(folder)
    assert info["skipped_rows"] == 3 and info["skipped_lines_first"] == [10, 20, 30]
    assert sum(info["rows"].values()) == 397


def test_x4_split_is_stratified_and_deterministic(tmp_path):
    params = _criteo_params(tmp_path, rows=2000, split="x4", seed=2018)
    folder = ensure_dataset(params)
    info = read_prepared(folder)
    assert info["rows"] == {"train": 1600, "valid": 200, "test": 200}
    raw = os.path.join(str(tmp_path), params["source"]["path"])
    y = pl.read_csv(raw, separator="\t", has_header=False, columns=[0])[:, 0].to_numpy()
    folds = stratified_folds(y, 10, 2018)
    per_fold = np.bincount(folds, weights=y, minlength=10)
    assert per_fold.max() - per_fold.min() <= 1  # clicks per fold differ by at most one row
    for k, split in enumerate(SPLITS):
        labels = np.load(os.path.join(folder, split, "label.npy"))
        assert labels.sum() == y[{"train": folds >= 2, "valid": folds == 1, "test": folds == 0}[split]].sum()
    from sklearn.model_selection import StratifiedKFold
    test_idx = next(StratifiedKFold(10, shuffle=True, random_state=2018).split(np.zeros(len(y)), y))[1]
    np.testing.assert_array_equal(np.flatnonzero(folds == 0), test_idx)
    again = ensure_dataset(dict(params, data_root=str(tmp_path / "again")) | {"source": dict(
        params["source"], path=raw)})
    assert read_prepared(again)["arrays_sha256"] == info["arrays_sha256"]


def _avazu_csv(path, rows, seed=0, bad_hour_line=None):
    rng = np.random.default_rng(seed)
    cols = {"id": [str(10**18 + i) for i in range(rows)], "click": (rng.random(rows) < 0.2).astype(int).astype(str),
            "hour": [f"1410{21 + d:02d}{h:02d}" for d, h in zip(rng.integers(0, 9, rows), rng.integers(0, 24, rows))]}
    for name in AVAZU_COLUMNS[3:]:
        cols[name] = [f"v{v}" for v in rng.zipf(1.6, rows) % 50]
    df = pl.DataFrame(cols).select(AVAZU_COLUMNS)
    if bad_hour_line:
        df = df.with_columns(pl.when(pl.int_range(pl.len()) == bad_hour_line - 2).then(pl.lit("14102"))
                             .otherwise(pl.col("hour")).alias("hour"))
    df.write_csv(path)
    return df


def test_avazu_x4_matches_fuxictr_processor(tmp_path):
    import yaml
    config = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "benchmark_configs",
                                              "dataset_config.yaml")))["avazu"]
    params = dict(config, dataset_id="avazu", data_root=str(tmp_path))
    os.makedirs(tmp_path / "Avazu")
    df = _avazu_csv(str(tmp_path / "Avazu" / "train.csv"), 1500)
    folder = ensure_dataset(params)
    info = read_prepared(folder)
    assert info["rows"] == {"train": 1200, "valid": 150, "test": 150}
    assert "id" not in info["columns"] and {"hour", "weekday", "weekend"} <= set(info["columns"])
    processor = pickle.load(open(os.path.join(folder, "feature_processor.pkl"), "rb"))
    assert type(processor).__module__ == "fuxictr.datasets.avazu"
    from fuxictr_deres.data.splits import x4_split_assignment
    assign = x4_split_assignment((df["click"] == "1").to_numpy().astype(np.uint8), 2018)
    typed = df.with_columns(pl.col("click").cast(pl.Float64))
    for k, split in enumerate(SPLITS):
        pre = processor.preprocess(typed.lazy().filter(pl.lit(pl.Series(assign == k)))).collect()
        batch = processor.transform({c: pre[c].to_list() for c in pre.columns})
        for col in info["columns"][:-1]:
            ours = np.load(os.path.join(folder, split, f"{col}.npy"))
            np.testing.assert_array_equal(ours, np.asarray(batch[col]), err_msg=f"{split}/{col}")
    hours = np.load(os.path.join(folder, "train", "hour.npy"))
    assert info["vocab_size"]["hour"] == 26 and hours.max() <= 25  # 24 hours + PAD + OOV
    assert info["vocab_size"]["weekend"] == 4


def test_avazu_bad_header_and_hour(tmp_path):
    path = str(tmp_path / "train.csv")
    _avazu_csv(path, 100, bad_hour_line=42)
    from fuxictr_deres.data.build import raw_layout
    from fuxictr_deres.data.raw_chunks import iter_raw_frames
    with pytest.raises(BadInputError, match=r"train.csv, line 42: field hour is '14102', expected an hour YYMMDDHH"):
        list(iter_raw_frames(raw_layout("avazu_csv", path, {}, "click")))
    _corrupt(path, 1, lambda line: line.replace("click", "clicked"))
    with pytest.raises(BadInputError, match=r"train.csv, line 1: expected the header id,click,hour"):
        list(iter_raw_frames(raw_layout("avazu_csv", path, {}, "click")))


def test_prepare_command_prints_summary(tmp_path, capsys):
    from fuxictr_deres.cli import main
    config = os.path.join(os.path.dirname(__file__), "..", "benchmark_configs")
    raw = write_criteo_demo(str(tmp_path / "sample.txt"), 500, 3)
    root = str(tmp_path / "root")
    assert main(["prepare", "--config", config, "--dataset", "criteo", "--data_root", root, "--source", raw]) == 0
    out = capsys.readouterr().out
    for text in ("train", "350", "click rate", "C26", "checksum"):
        assert text in out
    assert main(["prepare", "--config", config, "--dataset", "criteo", "--data_root", root, "--source", raw]) == 0
    assert "up to date" in capsys.readouterr().out
    bad = str(tmp_path / "bad.txt")
    open(bad, "w").write(open(raw).read().replace("\n", "\tx\n", 1))
    assert main(["prepare", "--config", config, "--dataset", "criteo", "--data_root", root, "--source", bad]) == 2
    assert f"{bad}, line 1: expected 40" in capsys.readouterr().err
