"""Search spaces in yaml: FuxiCTR's ``tuner_space`` lists and typed Optuna ranges, for one base expid.

A space file (``tuning/<Model>_<dataset>.yaml``)::

    base_config: ../benchmark_configs/   # the FuxiCTR config dir, relative to this file
    base_expid: DeRes_frappe             # the expid every trial starts from
    fixed: {epochs: 100}                 # optional: set in every trial, not searched (list values go here)
    tuner_space:                         # FuxiCTR's form: a list is a categorical choice (the grid), a scalar is fixed
        learning_rate: [1.e-3, 5.e-4]
        head_hidden_units: [[64], [128, 64]]
    search_space:                        # optional typed ranges for TPE/random; a key here replaces its tuner_space list
        learning_rate: {type: float, low: 1.e-4, high: 1.e-2, log: true}
        residual_params.num_blocks: {type: int, low: 2, high: 8, step: 2}

Dotted keys set one option inside a dict-valued parameter (``residual_params.num_blocks``). The grid sampler uses
``tuner_space`` alone, exactly FuxiCTR's grid; TPE and random use both sections.
"""

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from ..errors import ConfigError

TOP_KEYS = ("base_config", "base_expid", "fixed", "tuner_space", "search_space")
TYPED_FIELDS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
                "categorical": {"choices"}}
#: keys that change the prepared dataset or the bookkeeping: a study loads its data once, so they stay fixed
UNTUNABLE = ("dataset_id", "data_root", "model_root", "model_id", "config_dir", "gpu", "feature_cols", "label_col",
             "min_categr_count", "source", "feature_processor", "data_format", "train_data", "valid_data",
             "test_data", "rebuild_dataset", "feature_specs", "feature_config")
PRIMITIVE = (type(None), bool, int, float, str)


@dataclass
class Dimension:
    """One searched parameter: a categorical choice or a float/int range."""

    key: str
    kind: str                                  # categorical | float | int
    choices: List[Any] = field(default_factory=list)
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None

    @property
    def encoded(self) -> List[Any]:
        """Choices as Optuna stores them: primitives as they are, lists/dicts as JSON text."""
        if all(isinstance(c, PRIMITIVE) for c in self.choices):
            return list(self.choices)
        return [json.dumps(c) for c in self.choices]

    def decode(self, value: Any) -> Any:
        """The config value of a stored Optuna value."""
        if self.kind != "categorical" or all(isinstance(c, PRIMITIVE) for c in self.choices):
            return value
        return json.loads(value)

    def suggest(self, trial) -> Any:
        """Ask ``trial`` for this parameter; returns the config value."""
        if self.kind == "categorical":
            return self.decode(trial.suggest_categorical(self.key, self.encoded))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)


def _number(path: str, where: str, name: str, value: Any) -> float:
    """A range bound as a number: text such as '1e-4' (YAML 1.1 reads it as a string) is converted."""
    from ..expid_keys import as_number
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{path}: {where}.{name} = {value!r} is not a number")
    return as_number(name, value, "number", f"{path}: {where}")


def _typed(path: str, key: str, spec: dict) -> Dimension:
    where = f"search_space.{key}"
    kind = spec.get("type")
    if kind not in TYPED_FIELDS:
        raise ConfigError(f"{path}: {where}.type = {kind!r}; expected one of {sorted(TYPED_FIELDS)}")
    unknown = sorted(set(spec) - TYPED_FIELDS[kind] - {"type"})
    if unknown:
        raise ConfigError(f"{path}: {where} has unknown field(s) {unknown} for type {kind}; "
                          f"allowed: {sorted(TYPED_FIELDS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{path}: {where}.choices must be a non-empty list, got {choices!r}")
        return Dimension(key, kind, choices=choices)
    for name in ("low", "high"):
        if name not in spec:
            raise ConfigError(f"{path}: {where} needs `{name}`")
    low, high = _number(path, where, "low", spec["low"]), _number(path, where, "high", spec["high"])
    step = None if spec.get("step") is None else _number(path, where, "step", spec["step"])
    log = bool(spec.get("log", False))
    if low > high:
        raise ConfigError(f"{path}: {where}: low = {low} > high = {high}")
    if log and low <= 0:
        raise ConfigError(f"{path}: {where}: log = true needs low > 0, got {low}")
    if log and step is not None and (kind == "float" or step != 1):
        raise ConfigError(f"{path}: {where}: `step` and `log: true` cannot be combined")
    if step is not None and step <= 0:
        raise ConfigError(f"{path}: {where}.step = {step} must be positive")
    if kind == "int" and any(isinstance(v, float) and not float(v).is_integer() for v in (low, high, step or 1)):
        raise ConfigError(f"{path}: {where}: type int needs integer low/high/step")
    return Dimension(key, kind, low=low, high=high, log=log, step=step)


@dataclass
class SearchSpace:
    """A parsed space file: the base expid, fixed values, the FuxiCTR grid and the typed ranges."""

    path: str
    base_config: str
    base_expid: str
    fixed: Dict[str, Any]
    grid: Dict[str, Dimension]
    ranges: Dict[str, Dimension]

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    def dimensions(self, sampler: str) -> Dict[str, Dimension]:
        """The searched parameters: the grid is ``tuner_space`` alone, exactly FuxiCTR's (keys only in
        ``search_space`` keep the base expid's value there); TPE and random search the lists and the ranges."""
        if sampler == "grid":
            return dict(self.grid)
        return {**self.grid, **self.ranges}

    def grid_search_space(self) -> Dict[str, List[Any]]:
        """The ``GridSampler`` search space (stored values)."""
        return {key: dim.encoded for key, dim in self.dimensions("grid").items()}

    def grid_size(self) -> int:
        size = 1
        for dim in self.dimensions("grid").values():
            size *= len(dim.choices)
        return size

    def suggest(self, trial, sampler: str) -> Dict[str, Any]:
        """Every override of one trial: the fixed values, then the sampled ones (config values)."""
        overrides = dict(self.fixed)
        for key, dim in self.dimensions(sampler).items():
            overrides[key] = dim.suggest(trial)
        return overrides

    def decode(self, stored: Dict[str, Any]) -> Dict[str, Any]:
        """Config values of a trial's stored Optuna params."""
        dims = {**self.grid, **self.ranges}
        return {k: dims[k].decode(v) if k in dims else v for k, v in stored.items()}

    def check_keys(self, params: dict) -> None:
        """Every key must be one the base expid reads (``expid_keys``, the rule ``--set`` follows too), and not a
        data key."""
        from ..expid_keys import unknown_key_message
        searched_rule = "residual" in self.grid or "residual" in self.ranges
        for section, keys in (("fixed", self.fixed), ("tuner_space", self.grid), ("search_space", self.ranges)):
            for key in keys:
                head, _, sub = key.partition(".")
                if head in UNTUNABLE:
                    raise ConfigError(f"{self.path}: {section}.{key}: {head} cannot be tuned (a study prepares "
                                      f"its dataset once); change it in the base expid instead")
                # with the rule itself searched, its options depend on the trial: checked when a model is built
                message = unknown_key_message(head if searched_rule else key, params, self.fixed)
                if message:
                    raise ConfigError(f"{self.path}: {section}.{key}: {message}")
        # numbers as numbers: YAML 1.1 reads a choice such as 1e-3 as text, which would reach the optimizer
        from ..expid_keys import coerce_value
        for key in list(self.fixed):
            self.fixed[key] = coerce_value(params, key, self.fixed[key], f"{self.path}: fixed")
        for key, dim in self.grid.items():
            dim.choices = [coerce_value(params, key, c, f"{self.path}: tuner_space") for c in dim.choices]
        for key, dim in self.ranges.items():
            if dim.kind == "categorical":
                dim.choices = [coerce_value(params, key, c, f"{self.path}: search_space") for c in dim.choices]


def _mapping(path: str, content: dict, key: str) -> dict:
    value = content.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `{key}` must be a mapping of parameter names to values")
    return value


def parse_space(path: str, content: dict) -> SearchSpace:
    """Check and parse the content of a space file; errors name the file and the key."""
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping with {', '.join(TOP_KEYS)}")
    unknown = sorted(set(content) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; allowed: {list(TOP_KEYS)}")
    for key in ("base_config", "base_expid"):
        if not isinstance(content.get(key), str) or not content[key]:
            raise ConfigError(f"{path}: `{key}` is required (a string)")
    base_config = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), content["base_config"]))
    fixed = dict(_mapping(path, content, "fixed"))
    grid: Dict[str, Dimension] = {}
    for key, value in _mapping(path, content, "tuner_space").items():
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"{path}: tuner_space.{key} is an empty list; give at least one value")
            grid[key] = Dimension(key, "categorical", choices=value)
        else:
            fixed[key] = value                   # FuxiCTR: a scalar in tuner_space is a fixed value
    ranges: Dict[str, Dimension] = {}
    for key, spec in _mapping(path, content, "search_space").items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: search_space.{key} must be a mapping with `type:` "
                              f"(float, int or categorical), got {spec!r}")
        ranges[key] = _typed(path, key, spec)
    for key in set(fixed) & (set(grid) | set(ranges)):
        raise ConfigError(f"{path}: {key} is both fixed and searched")
    if not grid and not ranges:
        raise ConfigError(f"{path}: nothing to search: tuner_space has no list and search_space is empty")
    return SearchSpace(os.path.abspath(path), base_config, content["base_expid"], fixed, grid, ranges)


def load_space(path: str) -> SearchSpace:
    """Read and check a space file."""
    if not os.path.isfile(path):
        raise ConfigError(f"--space {path}: no such file")
    try:
        with open(path, "r") as fd:
            content = yaml.safe_load(fd)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return parse_space(path, content)


def load_base_params(space: SearchSpace, data_root: Optional[str] = None, model_root: Optional[str] = None,
                     check: bool = True) -> dict:
    """The base expid's merged parameters; with ``check`` the space's keys are checked against them."""
    from ..config import load_expid
    from ..models import get_model_class
    params = load_expid(space.base_config, space.base_expid, data_root=data_root, model_root=model_root)
    if check:
        try:
            get_model_class(params["model"])
        except ValueError as err:
            raise ConfigError(f"{space.path}: base expid {space.base_expid!r}: {err}") from err
        space.check_keys(params)
    return params

