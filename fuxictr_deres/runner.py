"""Running one expid end to end through FuxiCTR: data -> FeatureMap -> model -> fit -> evaluate -> results.

The steps are separate functions so the benchmark harness and Optuna tuning reuse them in-process (the dataset
is loaded once per study, not once per trial).

Every run trains into its own run directory, ``<model_root>/<dataset_id>/<expid>/seed<S>-<run id>/`` (checkpoint
and, for ``run_expid``, the log). FuxiCTR's ``BaseModel`` would put every run of an expid at one
``<model_root>/<dataset_id>/<expid>.model``, so two runs at once reloaded each other's weights; the run id (time +
random) makes each directory new, so no later or killed run overwrites a finished run's files.
"""

import gc
import logging
import os
import resource
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import print_to_json, set_logger

from . import distributed
from .config import apply_overrides, load_expid
from .errors import ConfigError
from .data.loader import SeededDataLoader
from .data.prepare import ensure_dataset
from .models import get_model_class
from .results import git_revision, result_files, write_result
from .training_monitor import EvalCallback, TrainingMonitor


@dataclass
class ExperimentData:
    """A prepared dataset: its FeatureMap and the folders of its splits."""

    feature_map: FeatureMap
    data_dir: str
    splits: Dict[str, str]

    def loaders(self, params: dict, stage: str):
        """FuxiCTR's RankDataLoader over this data, with the plugin's seeded loader injected."""
        args = dict(params)
        args.update(train_data=self.splits["train"], valid_data=self.splits["valid"],
                     test_data=self.splits["test"], data_loader=SeededDataLoader)
        args.update(distributed.loader_arguments(params, distributed.current()))   # this rank's shard
        return RankDataLoader(self.feature_map, stage=stage, **args)


def load_data(params: dict) -> ExperimentData:
    """Prepare the dataset if needed and load its FeatureMap with the expid's settings."""
    data_dir = ensure_dataset(params)
    feature_map = FeatureMap(params["dataset_id"], data_dir)
    feature_map.load(os.path.join(data_dir, "feature_map.json"), params)
    splits = {s: os.path.join(data_dir, s) for s in ("train", "valid", "test")}
    return ExperimentData(feature_map, data_dir, splits)


def build_model(params: dict, feature_map: FeatureMap):
    """The registered model class of ``params['model']``, built with the expid's keyword hyperparameters."""
    model_class = get_model_class(params["model"])
    try:
        return model_class(feature_map, **params)
    except (ValueError, TypeError) as err:
        raise type(err)(f"expid {params.get('model_id')!r} (model {params['model']}): {err}") from err


def new_run_dir(params: dict) -> str:
    """Create and return ``<model_root>/<dataset_id>/<model_id>/seed<seed>-<YYYYmmdd-HHMMSS>-<8 hex>``; it never
    existed before (``exist_ok=False``)."""
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    path = os.path.join(params["model_root"], str(params["dataset_id"]), str(params["model_id"]),
                        f"seed{params.get('seed')}-{run_id}")
    os.makedirs(path, exist_ok=False)
    return path


def make_run_dir(params: dict) -> str:
    """``new_run_dir`` on rank 0 (the one that writes), its path on every rank of a DDP job."""
    from .distributed.process_group import broadcast_object
    ctx = distributed.current()
    path = new_run_dir(params) if distributed.is_main() else None
    return path if ctx is None else broadcast_object(path, ctx)


def log_to_run_dir(params: dict, run_dir: str) -> str:
    """FuxiCTR's own ``set_logger`` (file + console), pointed at the run directory: it writes
    ``<model_root>/<dataset_id>/<model_id>.log``, so it is given the run directory's parent and name as those."""
    set_logger({"model_root": os.path.dirname(run_dir), "dataset_id": os.path.basename(run_dir),
                "model_id": params["model_id"]})
    return os.path.join(run_dir, f"{params['model_id']}.log")


def latest_checkpoint(model_root: str, expid: str) -> Optional[str]:
    """The checkpoint of the last finished run of ``expid`` recorded in ``<model_root>/results.jsonl`` (a path
    relative to ``model_root``, as a bench results store writes it, is taken from there)."""
    from .results import read_records
    runs = [r for r in read_records(model_root) if r.get("expid") == expid and r.get("checkpoint")]
    return os.path.join(model_root, runs[-1]["checkpoint"]) if runs else None


def check_gpu(gpu: int) -> None:
    """``--gpu N`` must name a CUDA device of this machine (FuxiCTR's get_device falls back to the CPU silently)."""
    if gpu is None or int(gpu) < 0:
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"--gpu {gpu}: CUDA is not available on this machine (torch {torch.__version__}, "
                          f"built for CUDA {torch.version.cuda or 'none'}); use --gpu -1 to train on the CPU")
    if int(gpu) >= torch.cuda.device_count():
        raise ConfigError(f"--gpu {gpu}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"0..{torch.cuda.device_count() - 1}")


_STATUS = "/proc/self/status"


def reset_peak_memory(device: torch.device) -> str:
    """Start measuring this run's own peak memory; returns how it is measured.

    CUDA: the caching allocator's peak, reset here. CPU on Linux: the kernel's resident high-water mark (VmHWM),
    reset to the current resident size by writing "5" to /proc/self/clear_refs. That is exact and costs nothing
    during the run (tracemalloc slows torch down many times and misses its native allocations; a sampling thread
    misses short peaks). Elsewhere the process's high-water mark since start (getrusage) is all there is."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda_max_allocated"
    try:
        with open("/proc/self/clear_refs", "w") as fd:
            fd.write("5")
        _vm_hwm_mb()
        return "run_rss_peak"
    except (OSError, ValueError):
        return "process_rss_peak"


def _vm_hwm_mb() -> float:
    with open(_STATUS) as fd:
        for line in fd:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0                     # kB
    raise ValueError(f"{_STATUS}: no VmHWM line")


def peak_memory_mb(device: torch.device, scope: str = "process_rss_peak") -> float:
    """The peak since ``reset_peak_memory`` returned ``scope``."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if scope == "run_rss_peak":
        return _vm_hwm_mb()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux reports KiB


def routing_removal_on_test(model, test_gen) -> Optional[Dict[str, Any]]:
    """Test AUC / logloss with the residual rule's routing removed against the trained model (diagnostics.py;
    d_AUC > 0: the routing helps), the figure by which a routing rule is judged (issue 12); None for models
    without a routing rule. Two more passes over the test split; single-process runs only (a DDP rank sees only
    its shard)."""
    from .diagnostics import routing_removal_effect
    if getattr(getattr(model, "rule", None), "routing_removal", None) is None:
        return None
    return routing_removal_effect(model, lambda: test_gen)


def train_and_evaluate(params: dict, data: ExperimentData, on_eval: Optional[EvalCallback] = None,
                       run_dir: Optional[str] = None) -> Dict[str, Any]:
    """Seed, build, fit with FuxiCTR's early stopping, evaluate on valid and test; return the run's record.
    The checkpoint goes to ``run_dir`` (a new ``new_run_dir(params)`` when not given)."""
    check_gpu(params.get("gpu", -1))
    seed_everything(seed=params["seed"])
    model = build_model(params, data.feature_map)
    ctx = distributed.current()
    if ctx is not None:                                         # before the monitor: its timing includes the all-reduce
        distributed.DistributedTraining(model, ctx, static_graph=params.get("ddp_static_graph", True))
    world_size = 1 if ctx is None else ctx.world_size
    memory_scope = reset_peak_memory(model.device)
    run_dir = run_dir or make_run_dir(params)
    model.model_dir = run_dir                                   # instead of FuxiCTR's shared per-dataset folder
    model.checkpoint = os.path.abspath(os.path.join(run_dir, f"{params['model_id']}.model"))
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    monitor = TrainingMonitor(model, on_eval=on_eval, context=f"expid {params['model_id']}")
    train_gen, valid_gen = data.loaders(params, "train")
    start = time.perf_counter()
    model.fit(train_gen, validation_data=valid_gen, **params)
    fit_seconds = time.perf_counter() - start
    logging.info("****** Validation evaluation ******")
    valid = model.evaluate(valid_gen)
    logging.info("******** Test evaluation ********")
    test_gen = data.loaders(params, "test")
    start = time.perf_counter()
    test = model.evaluate(test_gen)
    infer_seconds = time.perf_counter() - start
    routing = routing_removal_on_test(model, test_gen) if ctx is None else None
    best = monitor.best_round or {}
    record = {
        "expid": params["model_id"], "model": params["model"], "dataset_id": params["dataset_id"],
        "seed": params["seed"], "run_dir": os.path.abspath(run_dir), "checkpoint": model.checkpoint,
        "valid": valid, "test": test, "num_params": num_params,
        "best_epoch": best.get("epoch"), "history": monitor.history,
        "fit_seconds": fit_seconds,
        # every rank trains on the same number of rows (the loader's rule), so the job's rate is W times a rank's
        "train_samples_per_s": world_size * monitor.train_samples / max(monitor.train_seconds, 1e-9),
        "infer_samples_per_s": getattr(test_gen, "total_samples", test_gen.num_samples) / max(infer_seconds, 1e-9),
        "world_size": world_size,
        "peak_memory_mb": peak_memory_mb(model.device, memory_scope), "peak_memory_scope": memory_scope,
        "device": str(model.device),
        "routing_removal_test": routing,
        "git_revision": git_revision(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": {k: v for k, v in params.items() if k != "data_loader"},
    }
    del model, train_gen, valid_gen, test_gen
    gc.collect()
    return record


def run_expid(config_dir: str, expid: str, gpu: int = -1, data_root: Optional[str] = None,
              model_root: Optional[str] = None, overrides: Optional[dict] = None,
              command: Optional[str] = None, write: bool = True,
              prepared_root: Optional[str] = None) -> Dict[str, Any]:
    """Load ``expid`` from ``config_dir``, train and evaluate it in a new run directory, append its record to the
    results files."""
    params = load_expid(config_dir, expid, data_root=data_root, model_root=model_root, prepared_root=prepared_root)
    params = apply_overrides(params, overrides, where="--set")
    check_gpu(gpu)
    params["gpu"] = gpu
    ctx = distributed.init(gpu)                                 # under torchrun: join the group (DDP training)
    try:
        params = distributed.params_for_rank(params, ctx)
        run_dir = make_run_dir(params)
        log_file = log_to_run_dir(params, run_dir) if distributed.is_main() else None   # rank 0 writes files
        distributed.quiet_other_ranks(ctx)
        logging.info("Params: " + print_to_json({k: v for k, v in params.items()}))
        data = distributed.main_first(ctx, lambda: load_data(params))   # rank 0 prepares the data, once
        record = train_and_evaluate(params, data, run_dir=run_dir)
        record["log"] = log_file
        if write and distributed.is_main():
            write_result(params["model_root"], record, command or " ".join(shlex.quote(a) for a in sys.argv))
            record["results_files"] = result_files(params["model_root"])
    finally:
        distributed.shutdown()
    return record
