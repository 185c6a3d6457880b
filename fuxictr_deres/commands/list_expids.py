"""``fuxictr-deres list``: the expids of a config directory (filtered by model and dataset) and its datasets."""

import argparse
import os
from typing import Dict, List

HELP = "list the expids of a config directory (filter with --model / --dataset) and its datasets"
EXAMPLE = "fuxictr-deres list --model DeRes --dataset frappe"


def default_config_dir() -> str:
    """./benchmark_configs when it exists, else the one of the repository this package runs from."""
    if os.path.isdir("benchmark_configs"):
        return "benchmark_configs"
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "benchmark_configs")


def expid_rows(config_dir: str) -> List[Dict[str, str]]:
    """expid, model, dataset_id and defining file of every expid (read from the yaml, without building)."""
    from ..config import _base, _read_yaml, list_expids
    base = _base(config_dir)
    rows = []
    for expid, path in list_expids(config_dir).items():
        settings = _read_yaml(path)[expid] or {}
        rows.append({"expid": expid, "model": str(settings.get("model", base.get("model", "?"))),
                     "dataset_id": str(settings.get("dataset_id", base.get("dataset_id", "?"))),
                     "file": os.path.relpath(path, config_dir)})
    return rows


def matches(row: Dict[str, str], model: str = None, dataset: str = None) -> bool:
    """--model M: the expid's ``model:`` is M or the expid is named M_<dataset> (e.g. DeRes_AttnOnly);
    --dataset D: its dataset_id is D."""
    if model and row["model"] != model and row["expid"] != f"{model}_{row['dataset_id']}":
        return False
    return not dataset or row["dataset_id"] == dataset


def dataset_rows(config_dir: str, data_root: str = None) -> List[Dict[str, str]]:
    from ..config import DATA_ROOT_ENV, _read_yaml, _resolve, _yaml_files
    rows = []
    for path in _yaml_files(config_dir, "dataset_config"):
        for dataset_id, settings in _read_yaml(path).items():
            settings = settings or {}
            root = data_root or os.environ.get(DATA_ROOT_ENV)
            root = _resolve(root, os.getcwd()) if root else _resolve(settings.get("data_root", "../data/"),
                                                                        os.path.abspath(config_dir))
            source = settings.get("source") or {}
            kind = source.get("format", settings.get("data_format", "?")) if isinstance(source, dict) else "?"
            if isinstance(source, dict) and source.get("generate"):
                kind += " (generated)"
            prepared = os.path.isfile(os.path.join(root, dataset_id, "feature_map.json"))
            rows.append({"dataset_id": dataset_id, "source": kind,
                         "prepared": "yes" if prepared else "no", "folder": os.path.join(root, dataset_id)})
    return rows


def _print_table(rows: List[Dict[str, str]], columns: List[str]) -> None:
    widths = [max([len(c)] + [len(r[c]) for r in rows]) for c in columns]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  " + "  ".join(r[c].ljust(w) for c, w in zip(columns, widths)))


def execute(args: argparse.Namespace) -> int:
    config_dir = args.config or default_config_dir()
    if not args.datasets_only:
        rows = expid_rows(config_dir)
        shown = [r for r in rows if matches(r, args.model, args.dataset)]
        print(f"expids in {os.path.normpath(config_dir)}: {len(shown)} of {len(rows)}"
              + (f" (model {args.model})" if args.model else "") + (f" (dataset {args.dataset})" if args.dataset else ""))
        if shown:
            _print_table(shown, ["expid", "model", "dataset_id", "file"])
        elif rows:
            print(f"  none match; models: {', '.join(sorted({r['model'] for r in rows}))}; datasets: "
                  f"{', '.join(sorted({r['dataset_id'] for r in rows}))}")
    if not args.model or args.datasets_only:
        datasets = [r for r in dataset_rows(config_dir, args.data_root)
                    if not args.dataset or r["dataset_id"] == args.dataset]
        print(f"datasets in {os.path.normpath(os.path.join(config_dir, 'dataset_config.yaml'))}: {len(datasets)} "
              "(prepare one with: fuxictr-deres prepare --config DIR --dataset ID)")
        _print_table(datasets, ["dataset_id", "source", "prepared", "folder"])
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("list", help=HELP, description=HELP)
    parser.add_argument("--config", default=None,
                        help="config directory (default ./benchmark_configs, else the repository's)")
    parser.add_argument("--model", default=None, help="only expids of this model (e.g. DeRes, WuKong, DeRes_AttnOnly)")
    parser.add_argument("--dataset", default=None, help="only expids (and the dataset) with this dataset_id")
    parser.add_argument("--datasets", dest="datasets_only", action="store_true", help="list only the datasets")
    parser.add_argument("--data_root", default=None, help="where prepared datasets are looked for")
    parser.set_defaults(func=execute)
