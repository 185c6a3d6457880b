import gzip
import re

import numpy as np
import pytest

from fuxictr_deres.data.demo import generate_criteo_frame, write_criteo_demo, SPARSE_COLS

HEX8 = re.compile(r"^[0-9a-f]{8}$")


def test_same_seed_is_byte_identical(tmp_path):
    a = write_criteo_demo(str(tmp_path / "a.txt"), 2000, 11)
    b = write_criteo_demo(str(tmp_path / "b.txt"), 2000, 11)
    c = write_criteo_demo(str(tmp_path / "c.txt"), 2000, 12)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert open(a, "rb").read() != open(c, "rb").read()


def test_gzip_output_is_byte_identical_and_same_content(tmp_path):
    a = write_criteo_demo(str(tmp_path / "a.txt.gz"), 500, 3)
    b = write_criteo_demo(str(tmp_path / "b.txt.gz"), 500, 3)
    plain = write_criteo_demo(str(tmp_path / "p.txt"), 500, 3)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert gzip.open(a).read() == open(plain, "rb").read()


def test_raw_criteo_schema(tmp_path):
    path = write_criteo_demo(str(tmp_path / "train.txt"), 3000, 5)
    lines = open(path).read().splitlines()
    assert len(lines) == 3000
    missing_dense = missing_sparse = 0
    for line in lines:
        fields = line.split("\t")
        assert len(fields) == 40
        assert fields[0] in ("0", "1")
        for v in fields[1:14]:
            if v == "":
                missing_dense += 1
            else:
                int(v)
        for v in fields[14:]:
            if v == "":
                missing_sparse += 1
            else:
                assert HEX8.match(v), v
    assert missing_dense > 0 and missing_sparse > 0
    # heavy-tailed counts: a long right tail well beyond the median
    i5 = [int(line.split("\t")[5]) for line in lines if line.split("\t")[5] != ""]
    assert max(i5) > 10 * np.median(i5)


def test_click_rate_in_range():
    rate = generate_criteo_frame(20000, 2026)["label"].mean()
    assert 0.2 <= rate <= 0.3


def test_power_law_categoricals():
    counts = generate_criteo_frame(20000, 1)["C7"].drop_nulls().value_counts(sort=True)["count"].to_numpy()
    assert counts[0] > 20 * np.median(counts)


def test_planted_signal_is_learnable():
    pytest.importorskip("sklearn")
    import polars as pl
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder

    df = generate_criteo_frame(12000, 2026)
    x = df.select([pl.col(c).fill_null("") for c in SPARSE_COLS]).to_numpy()
    y = df["label"].to_numpy()
    enc = OneHotEncoder(handle_unknown="ignore")
    model = LogisticRegression(solver="liblinear").fit(enc.fit_transform(x[:9000]), y[:9000])
    auc = roc_auc_score(y[9000:], model.predict_proba(enc.transform(x[9000:]))[:, 1])
    assert auc > 0.65
