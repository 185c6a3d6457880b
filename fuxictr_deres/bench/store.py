"""A bench ``--out`` folder as a results store that can be committed, cloned and resumed (docs/results/README.md).

Committed: ``results.jsonl`` (one record per run), ``predictions/<key>.npy`` (test predictions) and the summaries.
Never committed (.gitignore): ``predictions/<dataset_id>.labels.npy`` (rows of licensed datasets),
``checkpoints/``, ``logs/``, ``locks/`` and ``results.csv`` (its lines hold the command line, with local paths).

Paths: a record written by the bench (``portable_record``) names its run directory, checkpoint and model root
relative to the store, the data roots as the placeholders ``DATA_ROOT`` / ``PREPARED_ROOT`` and the config folder
by its name, so a growing store names no machine path; run keys ignore these keys (harness.PLACE_KEYS).

Labels: each record carries ``test_labels_sha256`` = sha256 of its test labels as float32 bytes (``labels_sha256``).
A store without its labels file (a fresh clone) rebuilds it from the prepared dataset's test split (its label
column in file order, the order the bench's test evaluation reads it) and checks it against every record's hash
(``ensure_labels``); a record written before the hash existed is accepted with a warning.
"""

import hashlib
import os
import warnings
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..config import DATA_ROOT_ENV, load_expid, resolve_data_roots
from ..errors import ConfigError
from ..results import read_records

PREDICTIONS = "predictions"
DATA_ROOT = "DATA_ROOT"
PREPARED_ROOT = "PREPARED_ROOT"
LABELS_HASH = "test_labels_sha256"


@dataclass
class DataRoots:
    """Where a store's datasets can be read from to rebuild its test labels: ``--config`` and the roots
    (``--data_root`` / ``--prepared_root``, else ``$FUXICTR_DERES_DATA_ROOT`` / ``..._PREPARED_ROOT``, else the
    config's)."""

    config_dir: Optional[str] = None
    data_root: Optional[str] = None
    prepared_root: Optional[str] = None


def save_array(path: str, values: np.ndarray) -> None:
    """np.save through a temporary file and a rename, so a killed run never leaves a partial file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npy"
    np.save(tmp, values)
    os.replace(tmp, path)


def labels_path(out_dir: str, dataset_id: str) -> str:
    return os.path.join(out_dir, PREDICTIONS, f"{dataset_id}.labels.npy")


def labels_sha256(y: np.ndarray) -> str:
    """sha256 of the labels as contiguous float32 values (the dtype the bench stores them in)."""
    return hashlib.sha256(np.ascontiguousarray(y, dtype=np.float32).tobytes()).hexdigest()


def portable_record(record: dict, out_dir: str) -> dict:
    """``record`` with its paths relative to ``out_dir`` and its data roots as placeholders (module docstring)."""
    def inside(path):
        return os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir)) if path else path
    out = dict(record, run_dir=inside(record.get("run_dir")), checkpoint=inside(record.get("checkpoint")))
    config = dict(record.get("config") or {})
    config.update(model_root=inside(config.get("model_root")), data_root=DATA_ROOT, prepared_root=PREPARED_ROOT,
                  config_dir=os.path.basename(os.path.normpath(config.get("config_dir") or "config")))
    out["config"] = config
    if out.get("log"):
        out["log"] = inside(out["log"])
    return out


def absolute_record(record: dict, folder: str) -> dict:
    """``record`` of store ``folder`` with its store-relative paths made absolute again (absolute ones stay)."""
    def at(path):
        return os.path.abspath(os.path.join(folder, path)) if path else path
    out = dict(record, run_dir=at(record.get("run_dir")), checkpoint=at(record.get("checkpoint")))
    if record.get("log"):
        out["log"] = at(record["log"])
    if (record.get("config") or {}).get("model_root"):
        out["config"] = dict(record["config"], model_root=at(record["config"]["model_root"]))
    return out


def check_labels(y: np.ndarray, records: List[dict], where: str) -> None:
    """Every record's ``test_labels_sha256`` must be the hash of ``y``; records without one are accepted with a
    warning."""
    digest = labels_sha256(y)
    wrong = [f"{r['expid']} seed {r['seed']}" for r in records if r.get(LABELS_HASH) not in (None, digest)]
    if wrong:
        raise ValueError(f"{where}: these test labels (sha256 {digest[:12]}...) are not the ones the runs "
                         f"{', '.join(wrong)} were tested on (a different split, row order or dataset version); "
                         f"delete the labels file and rebuild it from the dataset those runs used")
    unhashed = sum(1 for r in records if LABELS_HASH not in r)
    if unhashed:
        warnings.warn(f"{where}: {unhashed} run record(s) carry no {LABELS_HASH} (written before it existed); "
                      f"their test labels are taken unchecked")


def dataset_records(out_dir: str, dataset_id: str) -> List[dict]:
    """The bench records of ``dataset_id`` in store ``out_dir``."""
    return [r for r in read_records(out_dir) if "bench_key" in r and r.get("dataset_id") == dataset_id]


def store_labels(out_dir: str, dataset_id: str, y: np.ndarray) -> None:
    """Write the test labels of ``dataset_id`` once; later runs must have the same ones."""
    path = labels_path(out_dir, dataset_id)
    if os.path.exists(path):
        old = np.load(path)
        if old.shape != y.shape or not np.array_equal(old, y):
            raise ValueError(f"{path}: the test labels of this run differ from the stored ones (a different split "
                             f"or row order); paired comparisons need one test set per dataset id")
        return
    check_labels(y, dataset_records(out_dir, dataset_id), path)
    save_array(path, np.asarray(y, dtype=np.float32))


def data_params(record: dict, roots: DataRoots) -> dict:
    """The config ``record`` was trained with, its data roots resolved from ``roots`` (the expid's dataset config
    gives them when no root is given)."""
    given = roots.data_root or os.environ.get(DATA_ROOT_ENV)
    params = {k: v for k, v in record["config"].items() if k not in ("data_root", "prepared_root", "model_root")}
    if roots.config_dir:
        try:
            expid = load_expid(roots.config_dir, record["expid"], roots.data_root, prepared_root=roots.prepared_root)
            return dict(params, data_root=expid["data_root"], prepared_root=expid["prepared_root"],
                        config_dir=expid["config_dir"])
        except ConfigError:
            if not given:
                raise
    if not given:
        raise ConfigError(f"no --config, --data_root or ${DATA_ROOT_ENV} to find dataset "
                          f"{record['dataset_id']!r} with")
    return resolve_data_roots(params, roots.config_dir or os.getcwd(), roots.data_root, roots.prepared_root)


def read_test_labels(params: dict) -> np.ndarray:
    """The label column of the prepared test split of ``params``' dataset (prepared first if needed), in file
    order, as float32."""
    from ..runner import load_data
    data = load_data(params)
    label = data.feature_map.labels[0]
    return np.load(os.path.join(data.splits["test"], f"{label}.npy")).astype(np.float32)


def ensure_labels(out_dir: str, dataset_id: str, roots: Optional[DataRoots] = None) -> np.ndarray:
    """The test labels of ``dataset_id`` in store ``out_dir``, checked against its records' hashes; when the file is
    absent they are rebuilt from the dataset (``roots``) and written. An error says how to get them otherwise."""
    path = labels_path(out_dir, dataset_id)
    records = dataset_records(out_dir, dataset_id)
    if os.path.exists(path):
        y = np.load(path)
        check_labels(y, records, path)
        return y
    if not records:
        raise FileNotFoundError(f"results store {out_dir}: no run of dataset {dataset_id!r} and no {path}")
    try:
        y = read_test_labels(data_params(records[0], roots or DataRoots()))
    except (FileNotFoundError, ConfigError) as err:
        raise FileNotFoundError(
            f"results store {out_dir}: the test labels of dataset {dataset_id!r} ({path}) are absent (test labels "
            f"are never committed: they are rows of the dataset) and could not be rebuilt from the dataset: "
            f"{err}\nRebuild them from the prepared dataset with:\n  fuxictr-deres bench --summary-only --out "
            f"{out_dir} --config benchmark_configs --data_root DATA_DIR [--prepared_root PREPARED_DIR]") from err
    store_labels(out_dir, dataset_id, y)
    return y
