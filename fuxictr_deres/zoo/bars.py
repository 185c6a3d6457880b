"""BARS result folders (https://github.com/reczoo/BARS, ``ranking/ctr/<Model>/<Model>_<dataset>/``) from this
project's results store (a ``results.jsonl`` written by ``run``/``bench``/``scaling``):

    <Model>_<dataset>.log        the training logs of the runs, one after another
    results.csv                  FuxiCTR's result line per run; a field holding a comma is csv-quoted, since BARS'
                                 parser splits lines on commas (``--models DeRes,OneTrans``, ``--set units=[64, 64]``)
    <Model>_<dataset>_config/    dataset_config.yaml + model_config.yaml that rerun it with run_expid.py
    environments.txt             hardware and software of the machine exporting
    README.md                    the runs' metrics and how to reproduce them
"""

import csv
import io
import os
import platform
import shlex
import shutil
import tempfile
from importlib import metadata
from typing import Dict, List, Optional, Tuple

import yaml

from ..results import metrics_text, read_records

DATASET_KEYS = ("data_root", "data_format", "train_data", "valid_data", "test_data", "source", "feature_cols",
                "label_col", "min_categr_count", "feature_processor")
DROPPED_KEYS = ("model_root", "config_dir", "gpu", "data_loader", "model_id", "verbose")
#: BARS dataset folder names of this project's dataset ids
BARS_NAMES = {"criteo": "criteo_x1", "criteo_x4": "criteo_x4_001", "avazu": "avazu_x4_001", "avazu_x1": "avazu_x1",
              "frappe": "frappe_x1", "movielenslatest": "movielenslatest_x1", "demo": "demo"}


def run_command(record: dict) -> str:
    """The command that reruns one record with this project's run_expid.py."""
    expid = record.get("bench_expid") or record["expid"]
    parts = ["python", "run_expid.py", "--config", "benchmark_configs", "--expid", expid, "--seed", str(record["seed"])]
    for key, value in sorted((record.get("overrides") or {}).items()):
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
        text = text[:-4].strip() if text.endswith("\n...") else text
        parts += ["--set", f"{key}={text}"]
    return " ".join(shlex.quote(p) for p in parts)


def result_line(record: dict) -> str:
    """FuxiCTR's results line as one csv row: `` time,[command] ...,[exp_id] ...,...``, fields quoted when needed."""
    fields = [f" {record.get('time', '').replace('-', '').replace(':', '').replace('T', '-')}",
              f"[command] {run_command(record)}", f"[exp_id] {record['expid']}",
              f"[dataset_id] {record['dataset_id']}", "[train] N.A.", f"[val] {metrics_text(record['valid'])}",
              f"[test] {metrics_text(record['test'])}"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


def record_log(results_dir: str, record: dict) -> Optional[str]:
    """The log file of one run: a bench folder's logs/<key>.log, a run directory's <expid>.log, else FuxiCTR's
    <model_root>/<dataset>/<expid>.log."""
    candidates = []
    if record.get("bench_key"):
        candidates.append(os.path.join(results_dir, "logs", f"{record['bench_key']}.log"))
    # paths relative to the store (a bench store's records) are taken from there; absolute ones stay
    if record.get("copied_from"):                       # bench --reuse: the log stayed in the source folder
        folder, _, key = record["copied_from"].rpartition(":")
        candidates.append(os.path.join(results_dir, folder, "logs", f"{key}.log"))
    if record.get("run_dir"):                            # run/run_expid.py: one directory per run
        candidates.append(os.path.join(results_dir, record["run_dir"], f"{record['expid']}.log"))
    config = record.get("config") or {}
    if config.get("model_root"):
        candidates.append(os.path.join(results_dir, config["model_root"], record["dataset_id"],
                                       f"{record['expid']}.log"))
    return next((c for c in candidates if os.path.isfile(c)), None)


def environments_text() -> str:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"
    cpu = platform.processor() or platform.machine()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fd:
            names = [line.split(":", 1)[1].strip() for line in fd if line.startswith("model name")]
        cpu = f"{names[0]} ({len(names)} cores)" if names else cpu
    try:
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        cuda = torch.version.cuda or "none"
    except ImportError:
        gpu, cuda = "unknown", "unknown"
    ram = "unknown"
    if os.path.isfile("/proc/meminfo"):
        with open("/proc/meminfo") as fd:
            kb = int(next(line for line in fd if line.startswith("MemTotal")).split()[1])
        ram = f"{kb / 2**20:.0f}G"
    software = ["CUDA: " + cuda, "python: " + platform.python_version()]
    software += [f"{name}: {version(pkg)}" for name, pkg in (
        ("pytorch", "torch"), ("numpy", "numpy"), ("polars", "polars"), ("pyyaml", "PyYAML"), ("sklearn", "scikit-learn"),
        ("tqdm", "tqdm"), ("fuxictr", "fuxictr"), ("fuxictr-deres", "fuxictr-deres"))]
    return ("[Hardware]\nCPU: " + cpu + "\nGPU: " + gpu + "\nRAM: " + ram + "\n\n[Software]\n"
            + "\n".join(software) + "\n")


def _config_files(name: str, record: dict) -> Dict[str, str]:
    config = {k: v for k, v in (record.get("config") or {}).items() if k not in DROPPED_KEYS}
    dataset = {k: config.pop(k) for k in DATASET_KEYS if k in config}
    dataset.pop("data_root", None)
    dump = lambda d: yaml.safe_dump(d, sort_keys=False, default_flow_style=None, width=120)
    return {"dataset_config.yaml": dump({record["dataset_id"]: {"data_root": "../data/", **dataset}}),
            "model_config.yaml": dump({name: config})}


def group_records(records: List[dict]) -> Dict[Tuple[str, str], List[dict]]:
    groups: Dict[Tuple[str, str], List[dict]] = {}
    for record in records:
        model = record.get("bench_model") or record["expid"].rsplit("_" + record["dataset_id"], 1)[0]
        groups.setdefault((model, record["dataset_id"]), []).append(record)
    return groups


def export_bars(results_dir: str, out_dir: str) -> List[str]:
    """Write one BARS folder per (model, dataset) of ``results_dir``; return the folders written. A folder is built
    next to its destination and moved into place only when complete."""
    records = read_records(results_dir)
    if not records:
        raise FileNotFoundError(f"{os.path.join(results_dir, 'results.jsonl')}: no results to export")
    written = []
    for (model, dataset_id), runs in sorted(group_records(records).items()):
        name = f"{model}_{BARS_NAMES.get(dataset_id, dataset_id)}"
        target = os.path.join(out_dir, "ranking", "ctr", model, name)
        missing = [r["expid"] + f" seed {r['seed']}" for r in runs if record_log(results_dir, r) is None]
        if missing:
            raise FileNotFoundError(f"{results_dir}: no log found for {', '.join(missing)} (looked in logs/<key>.log "
                                    "and <model_root>/<dataset_id>/<expid>.log)")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".bars-", dir=os.path.dirname(target))
        try:
            with open(os.path.join(staging, f"{name}.log"), "w", encoding="utf-8") as log:
                for r in runs:
                    with open(record_log(results_dir, r), "r", encoding="utf-8", errors="replace") as fd:
                        log.write(f"# ---- {r['expid']} seed {r['seed']}\n" + fd.read().rstrip("\n") + "\n")
            with open(os.path.join(staging, "results.csv"), "w", encoding="utf-8") as fd:
                fd.write("".join(result_line(r) for r in runs))
            os.makedirs(os.path.join(staging, f"{name}_config"))
            for file, text in _config_files(name, runs[0]).items():
                with open(os.path.join(staging, f"{name}_config", file), "w", encoding="utf-8") as fd:
                    fd.write(text)
            with open(os.path.join(staging, "environments.txt"), "w", encoding="utf-8") as fd:
                fd.write(environments_text())
            rows = "".join(f"| {r['seed']} | {r['test'].get('AUC', float('nan')):.6f} | "
                           f"{r['test'].get('logloss', float('nan')):.6f} |\n" for r in runs)
            with open(os.path.join(staging, "README.md"), "w", encoding="utf-8") as fd:
                fd.write(f"# {name}\n\n{model} on {dataset_id}, {len(runs)} run(s), exported by `fuxictr-deres "
                         f"export-bars` from fuxictr-deres' results store.\n\n| seed | test AUC | test logloss |\n"
                         f"|--:|--:|--:|\n{rows}\nReproduce (in the fuxictr-deres repository):\n\n```bash\n"
                         + "\n".join(run_command(r) for r in runs) + "\n```\n")
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        written.append(target)
    return written
