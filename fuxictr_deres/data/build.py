"""Building one prepared dataset folder from raw files, streaming, in three passes over bounded chunks.

1. read: raw text -> checked, typed, FuxiCTR-preprocessed chunks (``processor.preprocess``), saved as parquet
   parts in file order; the labels are kept (one byte per row) for the split.
2. fit: value counts (and normaliser statistics) over the train rows of every part -> FuxiCTR's ``fit``.
3. encode: every part -> ids (``ChunkEncoder``) -> appended to ``<split>/<column>.npy`` by the row's split.

Memory stays at about one chunk plus the vocabularies and one byte per row; nothing is held whole.
"""
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import polars as pl
from tqdm import tqdm

from .column_files import ColumnFiles
from .demo import CRITEO_COLUMNS, DENSE_COLS
from .encode import ChunkEncoder, output_dtypes
from .fit import StreamingStatistics, fit_processor, min_counts
from .raw_chunks import ReadStats, RawLayout, iter_raw_frames, read_header
from .raw_readers import column_dtypes
from .splits import SPLITS, TRAIN, random_split_assignment, x4_split_assignment

AVAZU_COLUMNS = ["id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id",
                 "app_domain", "app_category", "device_id", "device_ip", "device_model", "device_type",
                 "device_conn_type", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21"]
# default split ratios of the x1 layout per raw format (BARS: Criteo_x1 7:2:1, Avazu_x1 7:1:2)
X1_RATIOS = {"criteo_tsv": (7, 2, 1), "avazu_csv": (7, 1, 2)}
RAW_FORMATS = ("criteo_tsv", "avazu_csv")


@dataclass
class Staged:
    """Preprocessed parquet parts in file order and the split of every row."""

    parts: List[tuple] = field(default_factory=list)  # (path, rows)
    assign: Optional[np.ndarray] = None
    read: ReadStats = field(default_factory=ReadStats)


def raw_layout(fmt: str, path: str, dtypes: Dict[str, object], label: str, sep: str = ",") -> RawLayout:
    """The checks for a source file of format ``fmt`` (criteo_tsv, avazu_csv or csv)."""
    if fmt == "criteo_tsv":
        return RawLayout(path, "\t", list(CRITEO_COLUMNS), False, CRITEO_COLUMNS[0], integer_cols=DENSE_COLS,
                         dtypes=dtypes, description="label, I1..I13, C1..C26")
    if fmt == "avazu_csv":
        return RawLayout(path, ",", list(AVAZU_COLUMNS), True, "click", dtypes=dtypes,
                         patterns={"hour": (r"^[0-9]{8}$", "an hour YYMMDDHH (8 digits)")},
                         description="id, click, hour, C1, banner_pos, ..., C21")
    if fmt == "csv":
        header = read_header(path, sep)
        if label not in header:
            raise ValueError(f"{path}, line 1: the header has no label column {label!r} (found {header})")
        missing = [n for n in dtypes if n not in header]
        if missing:
            raise ValueError(f"{path}, line 1: the header lacks the column(s) {missing} that the dataset config's "
                             f"feature_cols name (found {header})")
        numeric = [n for n in header if n in dtypes and dtypes[n] != pl.String and n != label]
        return RawLayout(path, sep, header, True, label, numeric_cols=numeric, dtypes=dtypes)
    raise ValueError(f"unknown source format {fmt!r} (supported: {', '.join(RAW_FORMATS)}, csv)")


def _stage_file(processor, layout, parts_dir, staged, labels, skip_bad_rows, bar):
    for frame in iter_raw_frames(layout, skip_bad_rows, staged.read, on_progress=bar.update):
        labels.append((frame[layout.label] == 1).to_numpy().astype(np.uint8))
        pre = processor.preprocess(frame.lazy()).collect()
        path = os.path.join(parts_dir, f"part-{len(staged.parts):06d}.parquet")
        pre.write_parquet(path, compression="lz4")
        staged.parts.append((path, pre.height))


def stage(processor, source: dict, inputs: Dict[str, str], params: dict, parts_dir: str,
          skip_bad_rows: bool = False, progress: bool = False) -> Staged:
    """Pass 1: read every source file into preprocessed parts and assign each row its split."""
    os.makedirs(parts_dir, exist_ok=True)
    dtypes = column_dtypes(params["feature_cols"], params["label_col"])
    label = processor.feature_map.labels[0]
    fmt = source["format"]
    staged = Staged()
    total = sum(os.path.getsize(p) for p in inputs.values())
    with tqdm(total=total, unit="B", unit_scale=True, desc="read", disable=not progress) as bar:
        if fmt in RAW_FORMATS:
            labels = []
            _stage_file(processor, raw_layout(fmt, inputs["raw"], dtypes, label), parts_dir, staged, labels,
                        skip_bad_rows, bar)
            y = np.concatenate(labels) if labels else np.zeros(0, np.uint8)
            if len(y) == 0:
                raise ValueError(f"{inputs['raw']}: the file has no rows")
            kind = source.get("split", "x1")
            if kind == "x1":
                ratios = tuple(source.get("ratios", X1_RATIOS[fmt]))
                staged.assign = random_split_assignment(len(y), ratios, source.get("seed", 2018))
            elif kind == "x4":
                staged.assign = x4_split_assignment(y, source.get("seed", 2018))
            else:
                raise ValueError(f"source split {kind!r} is unknown (supported: x1, x4)")
        else:
            assign = []
            for k, split in enumerate(SPLITS):
                before = len(staged.parts)
                layout = raw_layout("csv", inputs[split], dtypes, label, source.get("sep", ","))
                _stage_file(processor, layout, parts_dir, staged, [], skip_bad_rows, bar)
                rows = sum(r for _, r in staged.parts[before:])
                assign.append(np.full(rows, k, dtype=np.uint8))
            staged.assign = np.concatenate(assign)
    return staged


def _part_splits(staged: Staged):
    """Yield (path, split of each of its rows)."""
    offset = 0
    for path, rows in staged.parts:
        yield path, staged.assign[offset:offset + rows]
        offset += rows


def fit(processor, staged: Staged, min_categr_count: int, num_buckets: int, progress: bool = False) -> None:
    """Pass 2: streamed statistics over the train rows -> FuxiCTR's fit (writes its three files)."""
    stats = StreamingStatistics(processor)
    for path, splits in tqdm(list(_part_splits(staged)), desc="fit", unit="part", disable=not progress):
        stats.add(pl.read_parquet(path), splits == TRAIN)
    fit_processor(processor, stats.result(min_counts(processor, min_categr_count)), min_categr_count, num_buckets)


def encode(processor, staged: Staged, out_dir: str, progress: bool = False) -> dict:
    """Pass 3: encode every part into ``out_dir/<split>/<column>.npy``; return rows, click rates, checksum."""
    rows = np.bincount(staged.assign, minlength=len(SPLITS))
    dtypes = output_dtypes(processor)
    label = processor.feature_map.labels[0]
    writers = {s: ColumnFiles(os.path.join(out_dir, s), dtypes, rows[k]) for k, s in enumerate(SPLITS)}
    clicks = np.zeros(len(SPLITS))
    encoder = None
    for path, splits in tqdm(list(_part_splits(staged)), desc="encode", unit="part", disable=not progress):
        frame = pl.read_parquet(path)
        encoder = encoder or ChunkEncoder(processor, frame.schema)
        columns = encoder(frame)
        for k, split in enumerate(SPLITS):
            mask = splits == k
            if not mask.any():
                continue
            whole = mask.all()
            for name, arr in columns.items():
                writers[split].append(name, arr if whole else arr[mask])
            clicks[k] += float(columns[label][mask].sum(dtype=np.float64))
    checksum = hashlib.sha256()
    for split in SPLITS:
        for name, digest in writers[split].close().items():
            checksum.update(f"{split}/{name}/{digest}".encode())
    return {
        "rows": {s: int(rows[k]) for k, s in enumerate(SPLITS)},
        "click_rate": {s: (float(clicks[k] / rows[k]) if rows[k] else None) for k, s in enumerate(SPLITS)},
        "arrays_sha256": checksum.hexdigest(),
    }


def build(processor, params: dict, source: dict, inputs: Dict[str, str], tmp_dir: str, settings: dict,
          skip_bad_rows: bool = False, progress: bool = False) -> dict:
    """Read, fit and encode into ``tmp_dir`` (``processor.data_dir`` must point there); return the build facts."""
    parts_dir = os.path.join(tmp_dir, "_parts")
    staged = stage(processor, source, inputs, params, parts_dir, skip_bad_rows, progress)
    if staged.read.skipped:
        logging.warning("Skipped %d bad rows (first lines: %s)", staged.read.skipped, staged.read.skipped_lines)
    logging.info("Fitting FuxiCTR %s on the train rows", type(processor).__name__)
    fit(processor, staged, settings["min_categr_count"], settings["num_buckets"], progress)
    facts = encode(processor, staged, tmp_dir, progress)
    shutil.rmtree(parts_dir)
    facts["skipped_rows"] = staged.read.skipped
    facts["skipped_lines_first"] = staged.read.skipped_lines
    return facts
