"""The one config loader: FuxiCTR's ``load_config`` semantics, with checks and clear errors around it.

FuxiCTR merges ``Base`` then the expid from ``model_config.yaml`` (or ``model_config/*.yaml``), then the dataset's
keys from ``dataset_config.yaml``. On top of that this loader
- names the file and the close matches when an expid or dataset id is unknown, and refuses an expid defined twice;
- resolves relative ``data_root`` / ``model_root`` against the config directory (not the working directory), so
  ``run_expid.py`` works from anywhere; ``--data_root`` / ``$FUXICTR_DERES_DATA_ROOT`` and ``--model_root`` win;
- reads numbers that YAML took for text (``1e-3`` is a string in YAML 1.1) as numbers for numeric keys, and
  rejects any other text there naming the key and type (``expid_keys``);
- refuses overrides of keys the expid does not read (``--set num_layer=8``), with close matches.
"""

import copy
import difflib
import glob
import os
from typing import Dict, List, Optional

import yaml
from fuxictr.utils import load_config as fuxictr_load_config

from .errors import ConfigError
from .expid_keys import check_override_keys, coerce_numbers, coerce_value

DATA_ROOT_ENV = "FUXICTR_DERES_DATA_ROOT"
PREPARED_ROOT_ENV = "FUXICTR_DERES_PREPARED_ROOT"


def _yaml_files(config_dir: str, kind: str) -> List[str]:
    single = os.path.join(config_dir, f"{kind}.yaml")
    if os.path.isfile(single):
        return [single]
    return sorted(glob.glob(os.path.join(config_dir, kind, "*.yaml")))


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_yaml_cache: Dict[tuple, dict] = {}


def _read_yaml(path: str) -> dict:
    """A config file's top-level mapping, parsed once per (path, mtime, size): commands read the same files
    many times and the config folder holds hundreds of expids."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    if key not in _yaml_cache:
        try:
            with open(path, "r") as fd:
                content = yaml.load(fd, Loader=_SafeLoader) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(content, dict):
            raise ConfigError(f"{path}: expected a mapping of ids to settings at the top level")
        _yaml_cache[key] = content
    return copy.deepcopy(_yaml_cache[key])


def list_expids(config_dir: str) -> Dict[str, str]:
    """Every expid of a config directory, mapped to the file that defines it."""
    found: Dict[str, str] = {}
    for path in _yaml_files(config_dir, "model_config"):
        for expid in _read_yaml(path):
            if expid == "Base":
                continue
            if expid in found:
                raise ConfigError(f"expid {expid!r} is defined twice: in {found[expid]} and in {path}")
            found[expid] = path
    return found


def _unknown(kind: str, name: str, known, where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; {len(known)} are defined there"
    return ConfigError(f"unknown {kind} {name!r} in {where}{hint}")


def _resolve(path: str, base_dir: str) -> str:
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def resolve_data_roots(params: dict, config_dir: str, data_root: Optional[str] = None,
                       prepared_root: Optional[str] = None) -> dict:
    """Set absolute ``data_root`` (where source files are read) and ``prepared_root`` (where the prepared dataset
    is written and read; default ``data_root``) in ``params``. A root given on the command line or in the
    environment is relative to the working directory; one written in the config is relative to the config
    directory."""
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    params["data_root"] = (_resolve(root, os.getcwd()) if root
                           else _resolve(params.get("data_root", "../data/"), config_dir))
    root = prepared_root or os.environ.get(PREPARED_ROOT_ENV)
    params["prepared_root"] = (_resolve(root, os.getcwd()) if root
                               else _resolve(params["prepared_root"], config_dir) if params.get("prepared_root")
                               else params["data_root"])
    return params


def load_expid(config_dir: str, expid: str, data_root: Optional[str] = None,
               model_root: Optional[str] = None, prepared_root: Optional[str] = None) -> dict:
    """Merged parameters of ``expid`` with absolute ``data_root`` and ``model_root``."""
    config_dir = os.path.abspath(os.path.expanduser(config_dir))
    if not os.path.isdir(config_dir):
        raise ConfigError(f"--config {config_dir}: no such directory")
    model_files = _yaml_files(config_dir, "model_config")
    if not model_files:
        raise ConfigError(f"{config_dir}: expected model_config.yaml or model_config/*.yaml")
    expids = list_expids(config_dir)
    if expid not in expids:
        raise _unknown("expid", expid, expids, os.path.join(config_dir, "model_config"))
    expid_settings = _read_yaml(expids[expid])[expid] or {}
    if "dataset_id" not in expid_settings and "dataset_id" not in _base(config_dir):
        raise ConfigError(f"{expids[expid]}: expid {expid!r} has no dataset_id")
    dataset_id = expid_settings.get("dataset_id", _base(config_dir).get("dataset_id"))
    datasets = {}
    for path in _yaml_files(config_dir, "dataset_config"):
        datasets.update({k: path for k in _read_yaml(path)})
    if dataset_id not in datasets:
        raise _unknown("dataset_id", str(dataset_id), datasets,
                       os.path.join(config_dir, "dataset_config.yaml") + f" (used by expid {expid!r})")
    params = fuxictr_load_config(config_dir, expid)
    if "model" not in params:
        raise ConfigError(f"{expids[expid]}: expid {expid!r} has no `model:` key")
    coerce_numbers(params, where=f"{expids[expid]}: expid {expid}")
    resolve_data_roots(params, config_dir, data_root, prepared_root)
    params["model_root"] = (_resolve(model_root, os.getcwd()) if model_root
                            else _resolve(params.get("model_root", "../checkpoints/"), config_dir))
    params["config_dir"] = config_dir
    return params


def _base(config_dir: str) -> dict:
    for path in _yaml_files(config_dir, "model_config"):
        base = _read_yaml(path).get("Base")
        if base:
            return base
    return {}


def parse_overrides(items) -> Dict[str, object]:
    """``["num_layers=8", "residual_params.num_blocks=4", "head_hidden_units=[128, 64]"]`` -> a dict; values are
    read as YAML, so numbers, lists and mappings work (``1e-3``, text in YAML 1.1, becomes a number in
    ``apply_overrides`` for numeric keys)."""
    overrides: Dict[str, object] = {}
    for item in items or []:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {err}") from err
    return overrides


def apply_overrides(params: dict, overrides: Optional[Dict[str, object]], where: str = "override") -> dict:
    """A copy of ``params`` with ``overrides`` set; a dotted key sets inside a mapping (``residual_params.tau``),
    copying the inner mappings so ``params`` itself is never changed. A key the expid does not read is an error
    (with close matches); numeric text of a numeric key becomes a number."""
    out = dict(params)
    check_override_keys(params, overrides or {}, where)
    for key, value in (overrides or {}).items():
        value = coerce_value(dict(params, **{k: v for k, v in (overrides or {}).items() if "." not in k}), key,
                             value, f"{where} {key}")
        target, parts = out, key.split(".")
        for part in parts[:-1]:
            inner = target.get(part)
            if inner is not None and not isinstance(inner, dict):
                raise ConfigError(f"override {key}: {part!r} is not a mapping")
            target[part] = dict(inner or {})
            target = target[part]
        target[parts[-1]] = value
    return out
