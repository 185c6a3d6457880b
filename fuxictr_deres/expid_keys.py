"""The keys an expid reads, and the type of its numeric ones: the checks behind ``--set``, bench/scaling overrides
and tuning spaces (one rule for all of them).

Model constructors take ``**kwargs``, so "read" is the union of: the merged expid config itself (Base + expid +
dataset), the keyword parameters of every ``__init__`` in the model class's MRO (FuxiCTR's ``BaseModel`` included),
``BaseModel.fit``, FuxiCTR's ``RankDataLoader`` and the plugin's seeded loader, and the runner's and data
preparation's own keys. A dotted key ``residual_params.x`` must name an option of the residual rule in use.

Numbers: YAML 1.1 reads ``1e-4`` (no dot) as text, and ``--set`` / space files parse values as YAML, so a learning
rate could reach the optimizer as a string. Every numeric key (a constructor default or annotation that is a number,
or one of ``NUMERIC_TYPES``) is converted from such text to a number, and anything else there is an error naming the
key and the expected type.
"""

import difflib
import inspect
import re
from typing import Any, Dict, Iterable, Optional, Set

from .errors import ConfigError

#: keys the runner, the loaders and data preparation read (besides the config's own and the model's arguments)
RUNNER_KEYS = ("model", "model_id", "dataset_id", "seed", "gpu", "model_root", "data_root", "prepared_root",
               "config_dir", "epochs", "max_gradient_norm", "batch_size", "shuffle", "num_workers", "verbose",
               "feature_cols", "label_col", "source", "min_categr_count", "num_buckets", "feature_processor",
               "group_id", "train_data", "valid_data", "test_data", "data_format", "data_loader",
               "ddp_static_graph")
#: types of numeric keys FuxiCTR reads outside typed signatures; "reg" also takes FuxiCTR's "l2(1.e-5)" text
NUMERIC_TYPES = {"learning_rate": "float", "embedding_regularizer": "reg", "net_regularizer": "reg",
                 "net_dropout": "float", "attention_dropout": "float", "epochs": "int", "batch_size": "int",
                 "early_stop_patience": "int", "seed": "int", "max_gradient_norm": "float", "eval_steps": "int",
                 "num_workers": "int", "min_categr_count": "int", "num_buckets": "int"}
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|nan)$", re.IGNORECASE)
_REGULARIZER = re.compile(r"^(l1|l2)\(.+\)$|^l1_l2\(.+,.+\)$")


def _model_class(params: dict) -> Optional[type]:
    from .models import MODELS
    return MODELS.get(params.get("model"))


def _signatures(params: dict) -> Iterable[inspect.Parameter]:
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.models import BaseModel

    from .data.loader import SeededDataLoader
    funcs = [BaseModel.fit, RankDataLoader.__init__, SeededDataLoader.__init__]
    model_class = _model_class(params)
    if model_class is not None:
        funcs += [cls.__dict__["__init__"] for cls in inspect.getmro(model_class) if "__init__" in cls.__dict__]
    for func in funcs:
        for p in inspect.signature(func).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                yield p


def read_keys(params: dict) -> Set[str]:
    """Every top-level key the expid of ``params`` reads."""
    return set(params) | set(RUNNER_KEYS) | {p.name for p in _signatures(params)}


def _residual_rule(params: dict, overrides: Optional[dict] = None) -> Optional[str]:
    if overrides and "residual" in overrides:
        return overrides["residual"]
    if params.get("residual"):
        return params["residual"]
    for p in _signatures(params):
        if p.name == "residual" and isinstance(p.default, str):
            return p.default
    return None


def unknown_key_message(key: str, params: dict, overrides: Optional[dict] = None) -> Optional[str]:
    """Why ``key`` is not read by the expid of ``params`` (with close matches), or None when it is.

    Without a ``model`` in ``params`` nothing is known about the model's arguments: every key passes."""
    if _model_class(params) is None:
        return None
    head, _, sub = key.partition(".")
    known = read_keys(params)
    if head not in known:
        close = difflib.get_close_matches(head, sorted(known), n=3, cutoff=0.75)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return (f"unknown key {head!r} for expid {params.get('model_id')!r} (not in its config nor a "
                f"{params.get('model')} argument){hint}")
    if sub and head == "residual_params":
        from .residuals import RESIDUAL_RULES, residual_rule_options
        rule = _residual_rule(params, overrides)
        if rule not in RESIDUAL_RULES:
            return None                                   # the rule itself is checked when the model is built
        options = residual_rule_options(rule)
        name = sub.split(".")[0]
        if name not in options:
            close = difflib.get_close_matches(name, sorted(options), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            return f"residual={rule!r} has no option {sub!r}{hint}; its options: {sorted(options)}"
    return None


def check_override_keys(params: dict, overrides: Dict[str, Any], where: str = "override") -> None:
    """Raise ConfigError for the first override key the expid does not read."""
    for key in overrides or {}:
        message = unknown_key_message(key, params, overrides)
        if message:
            raise ConfigError(f"{where} {key}: {message}")


def numeric_types(params: dict) -> Dict[str, str]:
    """``{key: 'int' | 'float' | 'number' | 'reg'}`` for the numeric keys of the expid of ``params``."""
    types = dict(NUMERIC_TYPES)
    for p in _signatures(params):
        if p.name in types:
            continue
        annotation, default = p.annotation, p.default
        if annotation in (int, float):
            types[p.name] = annotation.__name__
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            types[p.name] = "number"                      # an int default may still take a float
    return types


def as_number(key: str, value: Any, kind: str, where: str) -> Any:
    """``value`` of numeric ``key`` as a number (text such as '1e-4' converted); an error names key and type."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if kind == "reg" and _REGULARIZER.match(text.replace(" ", "")):
            return value
        if not _NUMBER.match(text):
            expected = {"int": "an integer", "float": "a number", "number": "a number",
                        "reg": "a number or l1(x) / l2(x) / l1_l2(x, y)"}[kind]
            raise ConfigError(f"{where}: {key} = {value!r} is not {expected}")
        value = float(text)
        if kind == "number" and value.is_integer() and not re.search(r"[.eE]", text):
            value = int(value)
    if kind == "int" and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{where}: {key} = {value!r} is not an integer")
        return int(value)
    return value


def coerce_numbers(params: dict, keys: Optional[Iterable[str]] = None, where: str = "config") -> dict:
    """Convert the numeric keys of ``params`` (only ``keys`` when given; dotted keys are left to their owner) in
    place; returns ``params``."""
    types = numeric_types(params)
    for key in (params if keys is None else keys):
        if key in types and key in params:
            params[key] = as_number(key, params[key], types[key], where)
    return params


def coerce_value(params: dict, key: str, value: Any, where: str = "override") -> Any:
    """``value`` for ``key`` (dotted ``residual_params.x`` included) with numeric text read as a number."""
    head, _, sub = key.partition(".")
    if not sub:
        kind = numeric_types(params).get(key)
        return as_number(key, value, kind, where) if kind else value
    if head == "residual_params" and "." not in sub:
        from .residuals import RESIDUAL_RULES, residual_rule_options
        rule = _residual_rule(params)
        default = residual_rule_options(rule).get(sub) if rule in RESIDUAL_RULES else None
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            return as_number(key, value, "number", where)
    return value
