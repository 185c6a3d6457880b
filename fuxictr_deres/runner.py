"""Running one expid end to end through FuxiCTR: data -> FeatureMap -> model -> fit -> evaluate -> results.

The steps are separate functions so the benchmark harness and Optuna tuning reuse them in-process (the dataset
is loaded once per study, not once per trial).
"""

import gc
import logging
import os
import resource
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.torch_utils import seed_everything
from fuxictr.utils import print_to_json, set_logger

from . import distributed
from .config import apply_overrides, load_expid
from .data.loader import SeededDataLoader
from .data.prepare import ensure_dataset
from .models import get_model_class
from .results import git_revision, write_result
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


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux reports KiB


def train_and_evaluate(params: dict, data: ExperimentData, on_eval: Optional[EvalCallback] = None) -> Dict[str, Any]:
    """Seed, build, fit with FuxiCTR's early stopping, evaluate on valid and test; return the run's record."""
    seed_everything(seed=params["seed"])
    model = build_model(params, data.feature_map)
    ctx = distributed.current()
    if ctx is not None:                                         # before the monitor: its timing includes the all-reduce
        distributed.DistributedTraining(model, ctx, static_graph=params.get("ddp_static_graph", True))
    if distributed.is_main():
        os.makedirs(model.model_dir, exist_ok=True)             # FuxiCTR's save_weights does not create it
    world_size = 1 if ctx is None else ctx.world_size
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
    best = monitor.best_round or {}
    record = {
        "expid": params["model_id"], "model": params["model"], "dataset_id": params["dataset_id"],
        "seed": params["seed"], "valid": valid, "test": test, "num_params": num_params,
        "best_epoch": best.get("epoch"), "history": monitor.history,
        "fit_seconds": fit_seconds,
        # every rank trains on the same number of rows (the loader's rule), so the job's rate is W times a rank's
        "train_samples_per_s": world_size * monitor.train_samples / max(monitor.train_seconds, 1e-9),
        "infer_samples_per_s": getattr(test_gen, "total_samples", test_gen.num_samples) / max(infer_seconds, 1e-9),
        "world_size": world_size,
        "peak_memory_mb": peak_memory_mb(model.device),
        "git_revision": git_revision(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": {k: v for k, v in params.items() if k != "data_loader"},
    }
    del model, train_gen, valid_gen, test_gen
    gc.collect()
    return record


def run_expid(config_dir: str, expid: str, gpu: int = -1, data_root: Optional[str] = None,
              model_root: Optional[str] = None, overrides: Optional[dict] = None,
              command: Optional[str] = None, write: bool = True) -> Dict[str, Any]:
    """Load ``expid`` from ``config_dir``, train and evaluate it, append its record to the results files."""
    params = load_expid(config_dir, expid, data_root=data_root, model_root=model_root)
    params = apply_overrides(params, overrides)
    params["gpu"] = gpu
    ctx = distributed.init(gpu)                                 # under torchrun: join the group (DDP training)
    try:
        params = distributed.params_for_rank(params, ctx)
        if distributed.is_main():                               # only rank 0 writes the log, checkpoint, results
            set_logger(params)
        distributed.quiet_other_ranks(ctx)
        logging.info("Params: " + print_to_json({k: v for k, v in params.items()}))
        data = distributed.main_first(ctx, lambda: load_data(params))   # rank 0 prepares the data, once
        record = train_and_evaluate(params, data)
        if write and distributed.is_main():
            write_result(params["model_root"], record, command or " ".join(shlex.quote(a) for a in sys.argv))
    finally:
        distributed.shutdown()
    return record
