"""The benchmark harness: expids ``<Model>_<dataset>`` x seeds (x variants of overrides), trained in-process through
``runner.load_data`` / ``runner.train_and_evaluate``, the data loaded once per dataset.

Resumable: each finished run appends its record to ``<out>/results.jsonl`` (results.write_result, the one writer)
with a ``bench_key`` = hash(whole resolved training config, variant label); a re-run skips the runs whose resolved
config is already there (so editing an expid's YAML retrains it), and a run killed before its record was appended is
simply redone. Parallel workers on one ``--out`` share the plan: each run key is trained under an exclusive
``flock`` of ``<out>/locks/<key>.lock``; a worker finding a key locked goes on to the next and comes back for it at
the end, by when its record is normally there. Test predictions go to ``<out>/predictions/<key>.npy`` (temp + rename)
BEFORE the record, so a record always has its predictions; the test labels once per dataset to
``<out>/predictions/<dataset_id>.labels.npy``, their sha256 into each record. Records name their files relative to
``<out>`` and no data root (store.py), so the folder can be committed and resumed in another clone.

Reuse: a run of another results folder (``reuse``) whose resolved training config is identical to a planned run's
(everything but where its files go) is copied in under the planned run's key instead of being trained again, e.g. the
L=4 runs of a benchmark table as the L=4 points of a depth sweep. The copy names its source in ``copied_from``.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..config import apply_overrides, load_expid
from ..errors import ConfigError
from ..results import RESULTS_JSONL, jsonable, read_records, write_result
from .store import (LABELS_HASH, PREDICTIONS, absolute_record, check_labels, ensure_labels, labels_path,
                    labels_sha256, portable_record, read_test_labels, save_array, store_labels)

LOCKS = "locks"
# config keys that say where a run's files come from or go, or how much it logs, not what it trains
PLACE_KEYS = ("model_root", "verbose", "data_loader", "data_root", "prepared_root", "config_dir")


@dataclass
class RunSpec:
    """One training run: an expid, a seed and the overrides applied on top of the expid's config."""

    model: str
    dataset: str
    seed: int
    overrides: Dict[str, object] = field(default_factory=dict)

    @property
    def expid(self) -> str:
        return f"{self.model}_{self.dataset}"

    @property
    def variant(self) -> str:
        """The overrides as canonical JSON: runs of one variant differ only by seed."""
        return json.dumps(jsonable(self.overrides), sort_keys=True)



def plan(models: Iterable[str], datasets: Iterable[str], seeds: Iterable[int],
         overrides: Optional[dict] = None, variants: Optional[List[dict]] = None) -> List[RunSpec]:
    """Every model x dataset x variant x seed, dataset-major (so each dataset is loaded once)."""
    specs = []
    for dataset in datasets:
        for variant in variants or [{}]:
            for model in models:
                for seed in seeds:
                    specs.append(RunSpec(model, dataset, int(seed), dict(overrides or {}, **variant)))
    return specs


def check_expids(config_dir: str, specs: List[RunSpec]) -> None:
    """Fail before any training when an expid of the plan does not exist (the error names it)."""
    from ..config import list_expids
    known = list_expids(config_dir)
    missing = sorted({s.expid for s in specs if s.expid not in known})
    if missing:
        raise ConfigError(f"expids {missing} are not defined in {config_dir} (the harness runs "
                          f"<Model>_<dataset>; {len(known)} expids are defined there)")


def run_key(params: dict, variant: str) -> str:
    """The key of a run: its whole resolved training config (``training_identity``) and the variant label it is
    filed under (``RunSpec.variant``)."""
    text = json.dumps({"config": training_identity(params), "variant": variant}, sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def finished_runs(out_dir: str) -> Dict[str, dict]:
    """The finished runs of ``out_dir`` by run key, recomputed from each record's stored config (so records of
    any earlier key scheme resume too)."""
    done = {}
    for r in read_records(out_dir):
        if "bench_key" in r and "config" in r:
            done[run_key(r["config"], r.get("bench_variant", "{}"))] = r
    return done


@contextlib.contextmanager
def run_lock(out_dir: str, key: str, wait: bool):
    """An exclusive lock on run ``key`` of ``out_dir``: yields True when held, False when another process holds it
    (``wait=False``). The kernel releases it when its holder dies, so a killed worker's run is redone."""
    os.makedirs(os.path.join(out_dir, LOCKS), exist_ok=True)
    fd = os.open(os.path.join(out_dir, LOCKS, f"{key}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def prediction_path(out_dir: str, key: str) -> str:
    return os.path.join(out_dir, PREDICTIONS, f"{key}.npy")


def training_identity(config: dict) -> str:
    """What a run trains, as canonical JSON: its resolved config without the keys of ``PLACE_KEYS``."""
    return json.dumps(jsonable({k: v for k, v in config.items() if k not in PLACE_KEYS}), sort_keys=True)


def reusable_runs(folders: Sequence[str]) -> Dict[str, Tuple[str, dict]]:
    """The finished runs of ``folders`` by training identity (the first folder listed wins a tie)."""
    found: Dict[str, Tuple[str, dict]] = {}
    for folder in folders:
        if not os.path.isfile(os.path.join(folder, RESULTS_JSONL)):
            raise FileNotFoundError(f"reuse folder {folder}: no {RESULTS_JSONL} there (expected a bench or scaling "
                                    f"output folder)")
        for record in read_records(folder):
            if "config" in record and "predictions" in record and "bench_key" in record:
                found.setdefault(training_identity(record["config"]), (folder, record))
    return found


def copy_run(source: str, record: dict, spec: RunSpec, key: str, out_dir: str, command: str,
             params: Optional[dict] = None) -> dict:
    """Append ``record`` of folder ``source`` to ``out_dir`` as the run ``spec`` (key ``key``), with its test
    predictions. The test labels come from ``source``, else from ``out_dir``, else from the dataset of ``params``
    (a cloned store has none), checked against the record's hash."""
    dataset_id = record["dataset_id"]
    if os.path.exists(labels_path(source, dataset_id)) or params is None:
        y = ensure_labels(source, dataset_id)
    elif os.path.exists(labels_path(out_dir, dataset_id)):
        y = np.load(labels_path(out_dir, dataset_id))
    else:
        y = read_test_labels(params)
    check_labels(y, [record], f"the test labels for run {record['bench_key']} of {source}")
    store_labels(out_dir, dataset_id, y)
    save_array(prediction_path(out_dir, key), np.load(os.path.join(source, record["predictions"])))
    copied = dict(absolute_record(record, source), bench_key=key, bench_model=spec.model,
                  bench_variant=spec.variant, overrides=spec.overrides,
                  predictions=os.path.relpath(prediction_path(out_dir, key), out_dir),
                  copied_from=f"{os.path.relpath(os.path.abspath(source), os.path.abspath(out_dir))}:"
                              f"{record['bench_key']}")
    copied[LABELS_HASH] = labels_sha256(y)
    copied = portable_record(copied, out_dir)
    write_result(out_dir, copied, command)
    return copied


def added_text(added: List[dict]) -> str:
    """'N runs trained now, K copied from --reuse' for the records ``run_bench`` returned."""
    copied = sum(1 for r in added if "copied_from" in r)
    return f"{len(added) - copied} runs trained now, {copied} copied from --reuse"


class _PredictionCatcher:
    """Keeps the (y_true, y_pred) of the model's last evaluation, which train_and_evaluate makes on the test set.

    The runner returns metrics only and FuxiCTR's ``evaluate`` has no hook, so the catcher wraps the model's
    ``evaluate_metrics`` on the instance, once, from the first evaluation callback (no extra test pass)."""

    def __init__(self):
        self.last = None

    def on_eval(self, round_index: int, logs: dict, model) -> None:
        if getattr(model, "_bench_catcher", None) is self:
            return
        inner = model.evaluate_metrics

        def evaluate_metrics(y_true, y_pred, metrics, group_id=None):
            self.last = (np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32))
            return inner(y_true, y_pred, metrics, group_id)

        model.evaluate_metrics = evaluate_metrics
        model._bench_catcher = self


def _log_to_file(path: str) -> None:
    """Send this run's logging to its own file only (the console shows the progress bar)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for handler in logging.root.handlers[:]:
        logging.root.removeHandler(handler)
        handler.close()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s P%(process)d %(levelname)s %(message)s",
                        handlers=[logging.FileHandler(path, mode="w")])


def _train_on_rank(params: dict, log_path: str):
    """One bench run on this rank of a launched group (``--nproc``): rank 0 logs to the run's file and returns
    ``(record, (y_true, y_pred))`` of the whole test split; the other ranks return None and write nothing."""
    from .. import distributed
    from ..runner import load_data, train_and_evaluate
    ctx = distributed.init(params.get("gpu", -1))
    try:
        if ctx.is_main:
            _log_to_file(log_path)
        distributed.quiet_other_ranks(ctx)
        params = distributed.params_for_rank(params, ctx)
        catcher = _PredictionCatcher()
        record = train_and_evaluate(params, load_data(params), on_eval=catcher.on_eval)
        return (record, catcher.last) if ctx.is_main else None
    finally:
        distributed.shutdown()


def run_params(config_dir: str, spec: RunSpec, out_dir: str, data_root: Optional[str] = None,
               verbose: bool = False, gpu: int = -1, prepared_root: Optional[str] = None) -> Tuple[dict, str]:
    """The resolved params of run ``spec`` and its run key."""
    params = load_expid(config_dir, spec.expid, data_root=data_root, prepared_root=prepared_root)
    params = apply_overrides(params, spec.overrides, where="--set")
    params["seed"] = spec.seed
    params["gpu"] = gpu
    params["verbose"] = 1 if verbose else 0
    key = run_key(params, spec.variant)
    # one checkpoint folder per run key: <out>/checkpoints/<key>/<dataset_id>/<expid>/seed<S>-<run id>/
    params["model_root"] = os.path.join(out_dir, "checkpoints", key)
    return params, key


def spec_key(config_dir: str, spec: RunSpec, data_root: Optional[str] = None) -> str:
    """The run key ``run_bench`` files ``spec`` under."""
    return run_params(config_dir, spec, "", data_root)[1]


def run_bench(config_dir: str, specs: List[RunSpec], out_dir: str, data_root: Optional[str] = None,
              verbose: bool = False, progress: bool = True,
              after_run: Optional[Callable[[RunSpec, dict], None]] = None,
              reuse: Sequence[str] = (), nproc: int = 1, gpu: int = -1,
              prepared_root: Optional[str] = None) -> List[dict]:
    """Run every spec not finished yet (copying those a ``reuse`` folder has trained with the identical config);
    return the records added now by this process (copies carry ``copied_from``). ``nproc > 1`` trains each run
    data-parallel on that many fresh processes (torchrun's launcher; ``batch_size`` stays the global batch)."""
    from tqdm import tqdm

    from ..distributed.launch import run_on_processes
    from ..flops import expid_flops
    from ..runner import check_gpu, load_data, train_and_evaluate
    from .synthetic import synthetic_feature_map
    check_expids(config_dir, specs)
    check_gpu(gpu)
    os.makedirs(out_dir, exist_ok=True)
    planned = [(spec, *run_params(config_dir, spec, out_dir, data_root, verbose, gpu, prepared_root))
               for spec in specs]
    done = finished_runs(out_dir)
    todo = [p for p in planned if p[2] not in done]
    reusable = reusable_runs(reuse) if reuse and todo else {}
    command = " ".join(shlex.quote(a) for a in sys.argv)
    made, data, data_id, flops_cache = [], None, None, {}
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="bench runs", unit="run",
               disable=not progress, file=sys.stderr)

    def run_one(spec: RunSpec, params: dict, key: str) -> Optional[dict]:
        nonlocal data, data_id
        if key in finished_runs(out_dir):             # another worker finished it since the plan was read
            return None
        source = reusable.get(training_identity(params))
        if source is not None:
            return copy_run(*source, spec, key, out_dir, command, params)
        log_path = os.path.join(out_dir, "logs", f"{key}.log")
        _log_to_file(log_path)
        if params["dataset_id"] != data_id:
            data, data_id = None, params["dataset_id"]
            data = load_data(params)
        cache_key = (spec.expid, spec.variant)
        if cache_key not in flops_cache:
            # FLOPs do not depend on vocabulary sizes: a synthetic map avoids a second copy of big tables
            flops_cache[cache_key] = expid_flops(params, synthetic_feature_map(params), batch_size=2,
                                                 counted=False).analytic_total
        if nproc > 1:
            record, last = run_on_processes(nproc, _train_on_rank, params, log_path)
        else:
            catcher = _PredictionCatcher()
            record = train_and_evaluate(params, data, on_eval=catcher.on_eval)
            last = catcher.last
        if last is None:
            raise RuntimeError(f"expid {spec.expid} seed {spec.seed}: no test predictions were seen")
        y_true, y_pred = last
        store_labels(out_dir, params["dataset_id"], y_true)
        save_array(prediction_path(out_dir, key), y_pred)
        record.update(bench_key=key, bench_model=spec.model, bench_variant=spec.variant,
                      overrides=spec.overrides, flops_per_sample=flops_cache[cache_key],
                      predictions=os.path.relpath(prediction_path(out_dir, key), out_dir))
        record[LABELS_HASH] = labels_sha256(y_true)
        record = portable_record(record, out_dir)
        write_result(out_dir, record, command)
        return record

    def attempt(spec: RunSpec, params: dict, key: str, wait: bool) -> bool:
        bar.set_postfix_str(f"{spec.expid} seed {spec.seed}")
        with run_lock(out_dir, key, wait) as locked:
            if not locked:
                return False
            record = run_one(spec, params, key)
        if record is not None:
            made.append(record)
            if after_run is not None:
                after_run(spec, record)
        bar.update(1)
        return True

    try:
        # the keys no other worker holds first; then wait for the held ones and pick up their record (or train
        # the key, if its worker died)
        held = [item for item in todo if not attempt(*item, wait=False)]
        for item in held:
            attempt(*item, wait=True)
    finally:
        bar.close()
    return made
