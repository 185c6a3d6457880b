"""A zoo folder's README.md in the template of FuxiCTR's zoo (FinalMLP, GDCN): the paper, the equations, how to run,
a configuration table of every key, this project's measured results with their command, the citation."""

import inspect
import json
import os
import typing
from typing import Dict, List, Optional, Sequence

from ..residuals import RESIDUAL_RULES, residual_rule_options
from .catalog import ZooModel
from .keys import DATASET_KEYS, FUXICTR_KEYS, MODEL_KEYS, RULE_KEYS

#: results folders under docs/results (summary.json of `fuxictr-deres bench`) and the BARS name of their data
RESULT_FOLDERS = {"frappe": "Frappe_x1", "movielens": "MovielensLatest_x1"}
KEYS_FILE = "fuxictr_deres/zoo/keys.py"


class UndocumentedKey(ValueError):
    pass


def _describe(table: Dict[str, str], key: str, model: str) -> str:
    if key not in table:
        raise UndocumentedKey(f"{model}: config key {key!r} has no description; add it to {KEYS_FILE}")
    return table[key]


def _type_name(value, annotation=None) -> str:
    if value is None and annotation is not None and annotation is not inspect.Parameter.empty:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        base = args[0] if args else annotation
        name = getattr(typing.get_origin(base), "__name__", None) or getattr(base, "__name__", str(base))
        return f"{name.lower()}\\|None"
    if value is None:
        return "None"
    return {"bool": "bool", "int": "int", "float": "float", "str": "str", "list": "list", "tuple": "list",
            "dict": "dict"}.get(type(value).__name__, type(value).__name__)


def _value(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    text = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return text.replace("|", "\\|")


def _table(rows: List[Sequence[str]]) -> str:
    head = "| Params | Type | Default | Description |\n|:--|:--|:--|:--|\n"
    return head + "".join(f"| {k} | {t} | {v} | {d} |\n" for k, t, v, d in rows)


def config_tables(model: ZooModel, classes: List[type], default: Dict[str, object], base: Dict[str, object]) -> str:
    from .folder import model_signature
    signature = {}
    for cls in classes:
        for name, p in model_signature(cls).items():
            signature.setdefault(name, p)
    rows = []
    dataset_rows = [(k, "str" if k not in ("min_categr_count", "feature_cols", "label_col") else
                     {"min_categr_count": "int", "feature_cols": "list", "label_col": "dict"}[k], "", v)
                    for k, v in DATASET_KEYS.items()]
    seen = set()
    for key, value in list(base.items()) + list(default.items()):
        seen.add(key)
        table = FUXICTR_KEYS if key in FUXICTR_KEYS else MODEL_KEYS
        annotation = signature[key].annotation if key in signature else None
        rows.append((key, _type_name(value, annotation), _value(value), _describe(table, key, model.name)))
    for key, p in signature.items():
        if key in seen or key in ("model_id", "gpu"):
            continue
        table = FUXICTR_KEYS if key in FUXICTR_KEYS else MODEL_KEYS
        rows.append((key, _type_name(p.default, p.annotation), _value(p.default), _describe(table, key, model.name)))
    text = ("The `dataset_config.yaml` file holds the dataset settings (FuxiCTR's):\n\n" + _table(dataset_rows)
            + "\nThe `model_config.yaml` file holds the model hyper-parameters; defaults are those of "
              f"`{model.name}_default` (keys it does not set: the model's own defaults):\n\n" + _table(rows))
    rules = _rule_rows(model.name) if "residual_params" in signature else ""
    return text + rules


def _rule_rows(model: str) -> str:
    out = ["\n`residual_params` of each residual rule (`residual:`):\n\n| residual | option | default | description |",
           "|:--|:--|:--|:--|"]
    for name in RESIDUAL_RULES:
        options = residual_rule_options(name)
        if not options:
            out.append(f"| {name} | (none) | | |")
        for key, default in options.items():
            out.append(f"| {name} | {key} | {_value(default)} | {_describe(RULE_KEYS, key, model)} |")
    return "\n".join(out) + "\n"


def _variant_sets(variant: str) -> str:
    return "".join(f" --set {k}={json.dumps(v)}" for k, v in json.loads(variant or "{}").items())


def results_section(model: ZooModel, results_dir: Optional[str]) -> str:
    """The rows of this project's committed bench summaries for the model's expids, with the command."""
    lines, commands = [], {}
    for folder, bars in RESULT_FOLDERS.items():
        path = os.path.join(results_dir or "", folder, "summary.json")
        if not results_dir or not os.path.isfile(path):
            continue
        with open(path, "r", encoding="utf-8") as fd:
            rows = json.load(fd)
        ref_row = next((r for r in rows if r.get("delta_auc") is None), None)
        reference = ref_row["model"] if ref_row else None
        for name in model.result_expids:
            for r in rows:
                if r["model"] != name:
                    continue
                delta = ("reference" if r.get("delta_auc") is None else
                         f"{r['delta_auc']:+.4f} [{r['delta_low']:+.4f}, {r['delta_high']:+.4f}]")
                lines.append(f"| {name} | {bars} | {r['seeds']} | {r['auc_mean']:.4f} +- {r['auc_std']:.4f} | "
                             f"{r['logloss_mean']:.4f} +- {r['logloss_std']:.4f} | {delta} | "
                             f"{r['num_params']:,} | {r['flops_per_sample']:,} |")
                if ref_row:      # the reference's runs first, at its own settings, into the same folder
                    commands.setdefault((r["dataset"], ref_row["seeds"], ref_row.get("variant") or "{}",
                                         reference), []).append(reference)
                commands.setdefault((r["dataset"], r["seeds"], r.get("variant") or "{}", reference), []).append(name)
    if not lines:
        return "No benchmark result of this model is committed yet.\n"
    head = (f"Measured by the fuxictr-deres benchmark harness on 2 CPU cores (a CPU budget: few epochs, so the "
            f"models are under-trained against BARS budgets; see docs/results in fuxictr-deres). dAUC is the paired "
            f"test-AUC difference to the reference model of the same table with a bootstrap 95% interval.\n\n"
            "| expid | dataset | seeds | test AUC | test logloss | dAUC vs reference | params | FLOPs/sample |\n"
            "|:--|:--|:--|:--|:--|:--|--:|--:|\n")
    return (head + "\n".join(lines) + "\n\nCommands (from the fuxictr-deres repository; DATA holds the BARS csv "
            "splits `Frappe_x1/` and `MovielensLatest_x1/`):\n\n```bash\n" + "\n".join(
                f"fuxictr-deres bench --config benchmark_configs --data_root DATA --datasets {dataset} --models "
                f"{','.join(dict.fromkeys(names))} --seeds {seeds} --reference {reference}{_variant_sets(variant)} "
                f"--out OUT_{dataset}" for (dataset, seeds, variant, reference), names in commands.items())
            + "\n```\n")


def render_readme(model: ZooModel, classes: List[type], test: Dict[str, object], default: Dict[str, object],
                  base: Dict[str, object], results_dir: Optional[str], min_version, tested: str) -> str:
    min_text = ".".join(map(str, min_version))
    extra = (f"\nThe folder also exports {', '.join('`' + c.__name__ + '`' for c in classes[1:])} "
             f"(`model: {classes[1].__name__}`).\n" if len(classes) > 1 else "")
    return f"""# {model.name}

{model.summary}

> {model.reference} [arXiv:{model.arxiv}](https://arxiv.org/abs/{model.arxiv})

## Model Overview

{model.equations}{extra}
## Requirements

```
fuxictr >= {min_text}    (checked by fuxictr_version.py)
torch              (any build FuxiCTR supports; nn.RMSNorm needs torch >= 2.4)
polars < 2         (FuxiCTR's csv path uses scan_csv(dtypes=...), removed in polars 2)
```

Tested with {tested}.

## How to run

```bash
pip install "fuxictr>={min_text}" torch "polars<2"
python run_expid.py --config ./config/ --expid {model.name}_test --gpu -1     # one epoch on the bundled tiny sample
```

`data/sample/` holds a tiny synthetic sample in the raw Criteo schema (rows of a generator with a planted signal,
no real data). `{model.name}_test` reads it from `data/tiny_npz/` (already built into FuxiCTR's npz layout, so it
runs in seconds); `dataset_id: tiny_csv` runs the same rows through FuxiCTR's own csv build instead. For your data,
add an entry to `config/dataset_config.yaml`, copy `{model.name}_default` in `config/model_config.yaml` to a new
expid with that `dataset_id`, and run it with `--expid`.

## Configuration Guide

{config_tables(model, classes, default, base)}
## Results

{results_section(model, results_dir)}
## Citation

```bibtex
{model.bibtex}
```

## Source

`src/` is generated from the [fuxictr-deres](https://arxiv.org/abs/2606.07980) package by
`fuxictr-deres export-zoo` (the package is the one source of truth; the FLOP-count methods of its measurement
harness are left out). It imports only fuxictr, torch, numpy and the Python standard library.
"""
