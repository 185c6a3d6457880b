"""Raw files -> a prepared FuxiCTR dataset folder, built once, atomically, keyed by a fingerprint.

Layout of ``<data_root>/<dataset_id>/``::

    feature_map.json, feature_processor.pkl, feature_vocab.json   (FuxiCTR's FeatureProcessor.fit writes these)
    train/ valid/ test/   one <column>.npy per feature and label (categorical int32, numeric/label float32)
    prepared.json          fingerprint, rows and click rate per split, vocab sizes, checksum of the arrays

Vocabularies are fitted by FuxiCTR's own ``FeatureProcessor`` (or the class named by ``feature_processor``) on the
train split; encoding is polars-native (``encode.py``) instead of FuxiCTR's Ray transform, which is slow and
unseeded. The build happens in a temporary sibling folder that is renamed into place only when complete.
"""
import hashlib
import importlib
import json
import logging
import os
import shutil
import uuid

from . import raw_readers
from .demo import write_criteo_demo
from .build import RAW_FORMATS
from .build import build as build_folder
from .splits import SPLITS

FORMAT_VERSION = 2
PREPARED_FILE = "prepared.json"
PREPARE_COMMAND = "fuxictr-deres prepare --config {config} --dataset {dataset_id} --data_root {data_root}"


class DatasetNotFoundError(FileNotFoundError):
    """The source files of a dataset are missing and no prepared copy matches the config."""


# ---------------------------------------------------------------- config handling

def _source_spec(params):
    """The ``source`` mapping of a dataset config; classic FuxiCTR ``train_data/valid_data/test_data`` csv paths
    are accepted when ``source`` is absent."""
    source = params.get("source")
    if source is None:
        if all(params.get(k) for k in ("train_data", "valid_data", "test_data")):
            return {"format": "csv", "train": params["train_data"], "valid": params["valid_data"],
                    "test": params["test_data"]}
        raise KeyError(f"dataset {params.get('dataset_id')!r}: the config has no 'source' key "
                       "(expected {format: criteo_tsv, path: ...} or {format: csv, train: ..., valid: ..., test: ...})")
    if not isinstance(source, dict) or "format" not in source:
        raise ValueError(f"dataset {params.get('dataset_id')!r}: 'source' must be a mapping with a 'format' key, "
                         f"got {source!r}")
    return dict(source)


def _abs(path, data_root):
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.join(data_root, path)


def _expected_inputs(source, data_root):
    """``{role: absolute path as configured}`` for the source's files."""
    fmt = source["format"]
    if fmt in RAW_FORMATS:
        if "path" not in source:
            raise KeyError(f"source of format {fmt} needs a 'path' key")
        return {"raw": _abs(source["path"], data_root)}
    if fmt == "csv":
        missing = [k for k in SPLITS if k not in source]
        if missing:
            raise KeyError(f"source of format csv needs keys train, valid, test; missing {missing}")
        return {k: _abs(source[k], data_root) for k in SPLITS}
    raise ValueError(f"unknown source format {fmt!r} (supported: criteo_tsv, avazu_csv, csv)")


def _processor_class(name):
    """``feature_processor`` config key: a dotted class path, or a module name under ``fuxictr.datasets``
    (``criteo`` -> ``fuxictr.datasets.criteo.CustomizedFeatureProcessor``); default FuxiCTR's FeatureProcessor."""
    if not name or name == "FeatureProcessor":
        from fuxictr.preprocess import FeatureProcessor
        return FeatureProcessor
    if "." not in name:
        name = f"fuxictr.datasets.{name}.CustomizedFeatureProcessor"
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"feature_processor {name!r} cannot be imported: {exc}") from exc


def _settings(params, source):
    for key in ("dataset_id", "data_root", "feature_cols", "label_col"):
        if key not in params:
            raise KeyError(f"dataset config is missing the key {key!r}")
    return {
        "format_version": FORMAT_VERSION,
        "feature_cols": params["feature_cols"],
        "label_col": params["label_col"],
        "min_categr_count": params.get("min_categr_count", 1),
        "num_buckets": params.get("num_buckets", 10),
        "feature_processor": params.get("feature_processor"),
        "group_id": params.get("group_id"),
        # where the files are is not a setting: their content is fingerprinted separately
        "source": {k: v for k, v in source.items() if k not in ("path",) + SPLITS},
    }


def _digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_signature(path, sample=1 << 20):
    """Size plus sha256 of the first and last MiB: cheap, content-based (mtime would differ across copies)."""
    size = os.path.getsize(path)
    h = hashlib.sha256()
    with open(path, "rb") as fd:
        h.update(fd.read(sample))
        if size > sample:
            fd.seek(max(size - sample, sample))
            h.update(fd.read(sample))
    return {"name": os.path.basename(path), "size": size, "sha256_head_tail": h.hexdigest()}


def _missing_error(params, data_root, expected):
    dataset_id = params["dataset_id"]
    lines = [f"Dataset {dataset_id!r} is not prepared under {os.path.join(data_root, dataset_id)} "
             "and its source files are missing:"]
    for path in expected.values():
        alt = "" if path.endswith(".gz") else f" (or {path}.gz)"
        lines.append(f"  {path}{alt}")
    command = PREPARE_COMMAND.format(config=params.get("config_dir") or "CONFIG_DIR", dataset_id=dataset_id,
                                     data_root=data_root)
    lines.append(f"Put the source files there, then prepare the dataset with:\n  {command}")
    return DatasetNotFoundError("\n".join(lines))


def read_prepared(dataset_dir):
    """The parsed ``prepared.json`` of a dataset folder, or None when absent or unreadable."""
    try:
        with open(os.path.join(dataset_dir, PREPARED_FILE)) as fd:
            return json.load(fd)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- building

def _build(params, settings, fingerprint, settings_fp, source, inputs, final_dir, tmp_dir,
           skip_bad_rows=False, progress=False):
    data_root, dataset_id = os.path.dirname(final_dir), os.path.basename(final_dir)
    cls = _processor_class(settings["feature_processor"])
    kwargs = {k: v for k, v in params.items() if k not in ("feature_cols", "label_col", "dataset_id", "data_root")}
    processor = cls(feature_cols=params["feature_cols"], label_col=params["label_col"], dataset_id=dataset_id,
                    data_root=data_root, **kwargs)

    # FeatureProcessor.fit writes its three files to processor.data_dir: point it at the temporary folder.
    def point_to(folder):
        processor.data_dir = folder
        processor.feature_map.data_dir = folder
        processor.json_file = os.path.join(folder, "feature_map.json")
        processor.pickle_file = os.path.join(folder, "feature_processor.pkl")
        processor.vocab_file = os.path.join(folder, "feature_vocab.json")

    point_to(tmp_dir)
    facts = build_folder(processor, params, source, inputs, tmp_dir, settings, skip_bad_rows, progress)
    point_to(final_dir)  # the pickled processor must name the final folder
    processor.save_pickle(os.path.join(tmp_dir, "feature_processor.pkl"))

    vocab_sizes = {name: spec["vocab_size"] for name, spec in processor.feature_map.features.items()
                   if "vocab_size" in spec}
    info = {
        "dataset_id": dataset_id,
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "settings_fingerprint": settings_fp,
        "inputs": {role: _file_signature(path) for role, path in inputs.items()},
        "settings": settings,
        "vocab_size": vocab_sizes,
        "columns": list(processor.feature_map.features) + list(processor.feature_map.labels),
    }
    info.update(facts)
    with open(os.path.join(tmp_dir, PREPARED_FILE), "w") as fd:
        json.dump(info, fd, indent=2, sort_keys=True, default=str)


def _remove_stale_builds(data_root, dataset_id):
    """Delete temporary folders of builds whose process is gone (killed mid-build)."""
    prefix = f".{dataset_id}.building-"
    try:
        names = os.listdir(data_root)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        try:
            pid = int(name[len(prefix):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            logging.info("Removing the leftover of an interrupted build: %s", name)
            shutil.rmtree(os.path.join(data_root, name), ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def _move_into_place(tmp_dir, final_dir, fingerprint):
    if os.path.exists(final_dir):
        old = os.path.join(os.path.dirname(final_dir),
                           f".{os.path.basename(final_dir)}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final_dir, old)
        try:
            os.rename(tmp_dir, final_dir)
        except OSError:
            os.rename(old, final_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp_dir, final_dir)
    except OSError:
        # another process finished the same dataset first: keep theirs if it is the same build
        done = read_prepared(final_dir)
        if done and done.get("fingerprint") == fingerprint:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            return
        raise


def ensure_dataset(params, force=False, skip_bad_rows=False, progress=False):
    """Return ``<data_root>/<dataset_id>``, preparing it first when it is missing or stale.

    ``params`` is a merged FuxiCTR expid config with ``dataset_id``, ``data_root``, ``feature_cols``,
    ``label_col``, optional ``min_categr_count`` (default 1), ``feature_processor``, ``config_dir`` (only used in
    error messages) and ``source`` (see the package docs). ``force=True`` rebuilds even when up to date. ``skip_bad_rows`` drops and counts malformed rows
    instead of stopping at the first (the count is in ``prepared.json``); ``progress`` shows tqdm bars.
    Raises ``DatasetNotFoundError`` when the source files are missing and no matching prepared copy exists.
    """
    data_root = os.path.abspath(os.path.expanduser(str(params["data_root"])))
    source = _source_spec(params)
    settings = _settings(params, source)
    settings_fp = _digest(settings)
    final_dir = os.path.join(data_root, str(params["dataset_id"]))
    expected = _expected_inputs(source, data_root)

    generate = source.get("generate")
    if generate and source["format"] == "criteo_tsv" and raw_readers.resolve_input(expected["raw"]) is None:
        logging.info("Writing the demo raw file %s", expected["raw"])
        write_criteo_demo(expected["raw"], int(generate.get("rows", 100000)), int(generate.get("seed", 2026)))

    inputs = {role: raw_readers.resolve_input(path) for role, path in expected.items()}
    done = read_prepared(final_dir)
    if any(v is None for v in inputs.values()):
        # raw files may be deleted after preparing: a copy prepared with the same settings is still valid
        if done and done.get("settings_fingerprint") == settings_fp and not force:
            return final_dir
        raise _missing_error(params, data_root, {r: p for r, p in expected.items() if inputs[r] is None})

    fingerprint = _digest({"settings": settings_fp,
                           "inputs": {role: _file_signature(path) for role, path in inputs.items()}})
    if done and done.get("fingerprint") == fingerprint and not force:
        logging.info("Dataset %s is up to date: %s", params["dataset_id"], final_dir)
        return final_dir

    os.makedirs(data_root, exist_ok=True)
    _remove_stale_builds(data_root, str(params["dataset_id"]))
    tmp_dir = os.path.join(data_root, f".{params['dataset_id']}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp_dir)
    try:
        _build(params, settings, fingerprint, settings_fp, source, inputs, final_dir, tmp_dir, skip_bad_rows,
               progress)
        _move_into_place(tmp_dir, final_dir, fingerprint)
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)
    logging.info("Prepared dataset %s: %s", params["dataset_id"], final_dir)
    return final_dir
