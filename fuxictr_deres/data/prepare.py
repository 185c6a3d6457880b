"""Raw files -> a prepared FuxiCTR dataset folder, built once, atomically, keyed by a fingerprint.

Layout of ``<prepared_root>/<dataset_id>/`` (``prepared_root`` defaults to ``data_root``, where the inputs are)::

    feature_map.json, feature_processor.pkl, feature_vocab.json   (FuxiCTR's FeatureProcessor.fit writes these)
    train/ valid/ test/   one <column>.npy per feature and label (categorical int32, numeric/label float32)
    prepared.json          fingerprint, rows and click rate per split, vocab sizes, checksum of the arrays

Vocabularies are fitted by FuxiCTR's own ``FeatureProcessor`` (or the class named by ``feature_processor``) on the
train split; encoding is polars-native (``encode.py``) instead of FuxiCTR's Ray transform, which is slow and
unseeded. The build happens in a temporary sibling folder; its entries are then moved into the dataset folder one
by one, ``prepared.json`` last (the commit mark). Preparing never deletes or overwrites a file it did not create: the
dataset folder may hold the user's raw files (FuxiCTR's usual ``<data_root>/<dataset_id>/train.txt`` layout), which
stay untouched, and an entry of the same name as an output that this code did not write stops the build with an
error. The inputs may live in a read-only folder when ``prepared_root`` points elsewhere.
"""
import fcntl
import hashlib
import importlib
import json
import logging
import os
import shutil
import uuid

from ..config import PREPARED_ROOT_ENV
from . import raw_readers
from .control import ControlRowModel
from .demo import CriteoRowModel, write_criteo_demo
from .build import RAW_FORMATS
from .build import build as build_folder
from .splits import SPLITS

FORMAT_VERSION = 2
PREPARED_FILE = "prepared.json"
PREPARE_COMMAND = "fuxictr-deres prepare --config {config} --dataset {dataset_id} --data_root {data_root}"
#: names this code has written into a dataset folder (kept across builds, so a build cut short mid-install can
#: still tell its own entries from the user's)
OUTPUTS_FILE = ".prepared-outputs.json"
#: what a folder prepared before OUTPUTS_FILE existed holds (those builds replaced the whole folder)
LEGACY_OUTPUTS = ("feature_map.json", "feature_processor.pkl", "feature_vocab.json", "train", "valid", "test",
                  PREPARED_FILE)
_HASH_BLOCK = 8 << 20
#: ``source.generate.generator``: the label model of a generated raw Criteo file (default ``demo``)
GENERATORS = {"demo": CriteoRowModel, "control": ControlRowModel}


class PreparedFolderConflictError(ValueError):
    """The dataset folder holds a file of the name of an output that preparation did not write."""


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


def _file_signature(path):
    """Size plus sha256 of the whole content, streamed in 8 MiB blocks: any edit (also a same-size one in the
    middle) makes the prepared copy stale; mtime is not used (it differs across copies of the same file)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fd:
        for block in iter(lambda: fd.read(_HASH_BLOCK), b""):
            h.update(block)
            size += len(block)
    return {"name": os.path.basename(path), "size": size, "sha256": h.hexdigest()}


def _prepare_command(params, data_root, prepared_root):
    command = PREPARE_COMMAND.format(config=params.get("config_dir") or "CONFIG_DIR", dataset_id=params["dataset_id"],
                                     data_root=data_root)
    return command + (f" --prepared_root {prepared_root}" if prepared_root != data_root else "")


def _legacy_signature(path, sample=1 << 20):
    """The fingerprint of folders prepared before whole-content hashing: size plus sha256 of the first and last MiB.
    Only used to recognise such a folder (see ``ensure_dataset``), never for a new build."""
    size = os.path.getsize(path)
    h = hashlib.sha256()
    with open(path, "rb") as fd:
        h.update(fd.read(sample))
        if size > sample:
            fd.seek(max(size - sample, sample))
            h.update(fd.read(sample))
    return {"name": os.path.basename(path), "size": size, "sha256_head_tail": h.hexdigest()}


def _legacy_match(done, settings_fp, inputs):
    """True when ``done`` was prepared with the head/tail fingerprint from these very inputs' head and tail."""
    recorded = (done or {}).get("inputs") or {}
    if not recorded or not all("sha256_head_tail" in v for v in recorded.values()):
        return False
    legacy = _digest({"settings": settings_fp, "inputs": {r: _legacy_signature(p) for r, p in inputs.items()}})
    return done.get("fingerprint") == legacy


def _missing_error(params, data_root, expected, prepared_root=None):
    dataset_id = params["dataset_id"]
    prepared_root = prepared_root or data_root
    lines = [f"Dataset {dataset_id!r} is not prepared under {os.path.join(prepared_root, dataset_id)} "
             "and its source files are missing:"]
    for path in expected.values():
        alt = "" if path.endswith(".gz") else f" (or {path}.gz)"
        lines.append(f"  {path}{alt}")
    command = _prepare_command(params, data_root, prepared_root)
    lines.append(f"Put the source files there, then prepare the dataset with:\n  {command}")
    return DatasetNotFoundError("\n".join(lines))


def read_prepared(dataset_dir):
    """The parsed ``prepared.json`` of a dataset folder, or None when absent or unreadable."""
    try:
        with open(os.path.join(dataset_dir, PREPARED_FILE)) as fd:
            return json.load(fd)
    except (OSError, ValueError):
        return None


def missing_files(dataset_dir, info):
    """Files a complete prepared folder has and ``dataset_dir`` lacks (one ``.npy`` per column and split)."""
    names = ["feature_map.json"] + [os.path.join(split, f"{col}.npy") for split in SPLITS
                                    for col in info.get("columns", [])]
    return [n for n in names if not os.path.isfile(os.path.join(dataset_dir, n))]


def prepared_root_of(params):
    """Where prepared datasets are written and read: ``prepared_root`` (config key, ``--prepared_root`` or
    ``$FUXICTR_DERES_PREPARED_ROOT``), else ``data_root`` (where the inputs are)."""
    root = params.get("prepared_root") or os.environ.get(PREPARED_ROOT_ENV) or params["data_root"]
    return os.path.abspath(os.path.expanduser(str(root)))


# ---------------------------------------------------------------- building

def _build(params, settings, fingerprint, settings_fp, source, inputs, signatures, final_dir, tmp_dir,
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
        "inputs": signatures,
        "settings": settings,
        "vocab_size": vocab_sizes,
        "columns": list(processor.feature_map.features) + list(processor.feature_map.labels),
    }
    info.update(facts)
    with open(os.path.join(tmp_dir, PREPARED_FILE), "w") as fd:
        json.dump(info, fd, indent=2, sort_keys=True, default=str)


def _remove_stale_builds(prepared_root, dataset_id):
    """Delete the temporary folders (``.<id>.building-<pid>-*``, ``.<id>.old-<pid>-*``) of builds whose process
    is gone (killed mid-build); both names are made by this module only."""
    prefixes = (f".{dataset_id}.building-", f".{dataset_id}.old-")
    try:
        names = os.listdir(prepared_root)
    except OSError:
        return
    for name in names:
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is None:
            continue
        try:
            pid = int(name[len(prefix):].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            logging.info("Removing the leftover of an interrupted build: %s", name)
            shutil.rmtree(os.path.join(prepared_root, name), ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def _owned_outputs(final_dir):
    """The entries of ``final_dir`` that preparation wrote (and may replace)."""
    try:
        with open(os.path.join(final_dir, OUTPUTS_FILE)) as fd:
            return set(json.load(fd))
    except FileNotFoundError:
        return set(LEGACY_OUTPUTS) if os.path.isfile(os.path.join(final_dir, PREPARED_FILE)) else set()
    except ValueError:
        return set()


def _write_json_atomically(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fd:
        json.dump(obj, fd, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _move_into_place(tmp_dir, final_dir):
    """Move the built entries of ``tmp_dir`` into ``final_dir`` one by one, replacing only earlier outputs.

    ``prepared.json`` goes first out and last in, so a folder cut short mid-way reads as not prepared (and is
    rebuilt); the replaced entries go to a hidden sibling folder, deleted at the end. Anything else in
    ``final_dir`` (the user's raw files) is never touched."""
    names = sorted(os.listdir(tmp_dir), key=lambda n: n == PREPARED_FILE)
    os.makedirs(final_dir, exist_ok=True)
    owned = _owned_outputs(final_dir)
    conflicts = [n for n in names if os.path.lexists(os.path.join(final_dir, n)) and n not in owned]
    if conflicts:
        raise PreparedFolderConflictError(
            f"{final_dir} already holds {', '.join(conflicts)}, which preparing did not write; nothing was changed. "
            f"Move those files, or write the prepared dataset elsewhere with --prepared_root DIR "
            f"(or ${PREPARED_ROOT_ENV})")
    _write_json_atomically(os.path.join(final_dir, OUTPUTS_FILE), sorted(owned | set(names)))
    trash = os.path.join(os.path.dirname(final_dir),
                         f".{os.path.basename(final_dir)}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(trash)
    try:
        for name in [PREPARED_FILE] + [n for n in names if n != PREPARED_FILE]:
            if os.path.lexists(os.path.join(final_dir, name)):
                os.rename(os.path.join(final_dir, name), os.path.join(trash, name))
        for name in names:
            os.rename(os.path.join(tmp_dir, name), os.path.join(final_dir, name))
    finally:
        shutil.rmtree(trash, ignore_errors=True)


class _BuildLock:
    """An exclusive ``flock`` on the prepared root folder itself (no lock file is left behind): concurrent runs on a
    fresh data root build a dataset once (the others wait, then find it up to date). Released by the kernel if the
    process is killed."""

    def __init__(self, prepared_root):
        self.path = prepared_root

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def ensure_dataset(params, force=False, skip_bad_rows=False, progress=False):
    """Return ``<prepared_root>/<dataset_id>``, preparing it first when it is missing, incomplete or stale.

    ``params`` is a merged FuxiCTR expid config with ``dataset_id``, ``data_root`` (where the source files are),
    optional ``prepared_root`` (where the prepared dataset goes; default ``data_root``), ``feature_cols``,
    ``label_col``, optional ``min_categr_count`` (default 1), ``feature_processor``, ``config_dir`` (only used in
    error messages) and ``source`` (see the package docs). ``force=True`` rebuilds even when up to date.
    ``skip_bad_rows`` drops and counts malformed rows instead of stopping at the first (the count is in
    ``prepared.json``); ``progress`` shows tqdm bars.
    Raises ``DatasetNotFoundError`` when the source files are missing and no matching prepared copy exists.
    """
    data_root = os.path.abspath(os.path.expanduser(str(params["data_root"])))
    prepared_root = prepared_root_of(params)
    source = _source_spec(params)
    settings = _settings(params, source)
    settings_fp = _digest(settings)
    dataset_id = str(params["dataset_id"])
    final_dir = os.path.join(prepared_root, dataset_id)
    expected = _expected_inputs(source, data_root)

    generate = source.get("generate")
    if generate and source["format"] == "criteo_tsv" and raw_readers.resolve_input(expected["raw"]) is None:
        generator = generate.get("generator", "demo")
        if generator not in GENERATORS:
            raise ValueError(f"dataset {dataset_id!r}: source.generate.generator={generator!r}; expected one of "
                             f"{sorted(GENERATORS)}")
        logging.info("Writing the generated (%s) raw file %s", generator, expected["raw"])
        write_criteo_demo(expected["raw"], int(generate.get("rows", 100000)), int(generate.get("seed", 2026)),
                          model_cls=GENERATORS[generator])

    inputs = {role: raw_readers.resolve_input(path) for role, path in expected.items()}
    done = read_prepared(final_dir)
    incomplete = missing_files(final_dir, done) if done else []
    if any(v is None for v in inputs.values()):
        # raw files may be deleted after preparing: a copy prepared with the same settings is still valid
        if done and done.get("settings_fingerprint") == settings_fp and not force:
            if incomplete:
                raise DatasetNotFoundError(
                    f"{final_dir}: the prepared copy of dataset {dataset_id!r} is incomplete (missing "
                    f"{', '.join(incomplete[:5])}{' ...' if len(incomplete) > 5 else ''}) and its source files are "
                    f"missing ({', '.join(p for r, p in expected.items() if inputs[r] is None)}): put them back, "
                    f"then run {_prepare_command(params, data_root, prepared_root)}")
            return final_dir
        raise _missing_error(params, data_root, {r: p for r, p in expected.items() if inputs[r] is None},
                             prepared_root)

    signatures = {role: _file_signature(path) for role, path in inputs.items()}
    fingerprint = _digest({"settings": settings_fp, "inputs": signatures})

    def up_to_date(info):
        return info and info.get("fingerprint") == fingerprint and not force and not missing_files(final_dir, info)

    if up_to_date(done):
        logging.info("Dataset %s is up to date: %s", dataset_id, final_dir)
        return final_dir
    if done and not force and not incomplete and _legacy_match(done, settings_fp, inputs):
        # prepared by an earlier version, which fingerprinted the first and last MiB only: not rebuilt unasked
        # (other runs may be reading it), but said once per use
        logging.warning("Dataset %s: %s was prepared with a head/tail fingerprint of its inputs, so an edit in the "
                        "middle of a source file would go unnoticed; `prepare --force` rebuilds it with a "
                        "whole-content fingerprint", dataset_id, final_dir)
        return final_dir
    if done and incomplete:
        logging.warning("Dataset %s: %s is incomplete (missing %s): rebuilding it", dataset_id, final_dir,
                        ", ".join(incomplete[:5]))

    os.makedirs(prepared_root, exist_ok=True)
    with _BuildLock(prepared_root):
        done = read_prepared(final_dir)
        if up_to_date(done):                       # another process built it while this one waited
            return final_dir
        _remove_stale_builds(prepared_root, dataset_id)
        tmp_dir = os.path.join(prepared_root, f".{dataset_id}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.makedirs(tmp_dir)
        try:
            _build(params, settings, fingerprint, settings_fp, source, inputs, signatures, final_dir, tmp_dir,
                   skip_bad_rows, progress)
            _move_into_place(tmp_dir, final_dir)
        finally:
            if os.path.exists(tmp_dir):
                shutil.rmtree(tmp_dir, ignore_errors=True)
    logging.info("Prepared dataset %s: %s", dataset_id, final_dir)
    return final_dir
