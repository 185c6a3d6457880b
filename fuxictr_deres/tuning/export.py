"""The best trial written back as a ready-to-run expid: ``<out>/model_config/<expid>_tuned.yaml`` and a
``<out>/dataset_config.yaml`` holding the dataset's block, so ``run_expid.py --config <out> --expid <expid>_tuned``
trains the best trial again (same seed: the same validation metric, bit for bit on CPU).

Both name this machine's folders (absolute data and prepared-data roots, the absolute ``--out``), so the export
also writes ``<out>/<expid>_tuned.yaml``, a portable copy without them, to commit or share."""

import os
from typing import Dict, Optional, Tuple

import optuna
import yaml
from fuxictr.utils import load_dataset_config
from optuna.trial import TrialState

from ..config import apply_overrides
from ..results import jsonable
from .objective import RUN_KEYS
from .space import SearchSpace

#: model keys that name a folder of this machine: left out of the portable copy
LOCAL_PATH_KEYS = ("prepared_root",)


def tuned_expid(space: SearchSpace) -> str:
    return f"{space.base_expid}_tuned"


def best_trial(study: optuna.Study) -> Optional[optuna.trial.FrozenTrial]:
    """The best COMPLETE trial, None when there is none."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def trial_overrides(trial: optuna.trial.FrozenTrial, space: SearchSpace) -> Dict:
    """What the trial set on top of the base expid (stored by the objective; rebuilt from params otherwise)."""
    if "overrides" in trial.user_attrs:
        return dict(trial.user_attrs["overrides"])
    return {**space.fixed, **space.decode(trial.params)}


def _write_yaml(path: str, header: str, content: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fd:
        fd.write(header)
        yaml.safe_dump(jsonable(content), fd, default_flow_style=None, sort_keys=False, width=120)
    os.replace(tmp, path)                           # never a half-written config


def export_trial(trial: optuna.trial.FrozenTrial, space: SearchSpace, base_params: dict, out_dir: str,
                 study_name: str = "") -> Tuple[str, str]:
    """Write the trial as expid ``<base_expid>_tuned`` under ``out_dir``; returns (expid, model_config path)."""
    params = apply_overrides(base_params, trial_overrides(trial, space))
    dataset_id = params["dataset_id"]
    dataset = load_dataset_config(space.base_config, dataset_id)
    dataset.pop("dataset_id", None)
    # dataset keys override model keys when FuxiCTR merges, so a tuned dataset key (batch_size, embedding_dim)
    # must be written into the dataset block
    dataset_block = {k: params.get(k, v) for k, v in dataset.items()}
    dataset_block["data_root"] = params["data_root"]        # absolute: the copy lives in another folder
    model_block = {k: v for k, v in params.items() if k not in RUN_KEYS and k not in dataset}
    model_block["dataset_id"] = dataset_id
    model_block["model_root"] = "./checkpoints/"
    expid = tuned_expid(space)
    header = _header(trial, study_name, params.get("monitor", ""), space.path,
                     f"--config {os.path.abspath(out_dir)} --expid {expid}")
    os.makedirs(os.path.join(out_dir, "model_config"), exist_ok=True)
    model_path = os.path.join(out_dir, "model_config", f"{expid}.yaml")
    _write_yaml(model_path, header, {expid: model_block})
    _write_yaml(os.path.join(out_dir, "dataset_config.yaml"),
                f"# The dataset block of {dataset_id} from {space.base_config}, data_root made absolute\n",
                {dataset_id: dataset_block})
    portable_header = _header(trial, study_name, params.get("monitor", ""), _shown_path(space.path),
                              f"--config OUT --expid {expid} (OUT: the --out of the tune command, which also holds "
                              "dataset_config.yaml)")
    portable = {k: v for k, v in model_block.items() if k not in LOCAL_PATH_KEYS}
    _write_yaml(os.path.join(out_dir, f"{expid}.yaml"), portable_header, {expid: portable})
    return expid, model_path


def _header(trial: optuna.trial.FrozenTrial, study_name: str, monitor: str, space_path: str, run_args: str) -> str:
    return (f"# Best trial {trial.number} of study {study_name!r} (validation {monitor} = {trial.value:.6f}), "
            f"exported by fuxictr-deres tune from {space_path}\n"
            f"# Run it: python run_expid.py {run_args}\n")


def _shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it, else its file name: no folder of this
    machine in a file meant to be shared."""
    relative = os.path.relpath(os.path.abspath(path))
    return os.path.basename(path) if relative.startswith(os.pardir) else relative
