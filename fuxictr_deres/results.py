"""The one results writer: each finished run appends one FuxiCTR-format line to ``results.csv`` and one JSON
record to ``results.jsonl`` under the model root.

Records are appended whole: each line is written with a single ``write`` on a file opened with O_APPEND, under an
exclusive ``flock``, so concurrent runs (several processes, Optuna workers) never interleave or tear lines, and a
record already written is never rewritten.
"""

import fcntl
import json
import math
import os
import subprocess
from datetime import datetime
from typing import Any, Dict, List, Optional

RESULTS_CSV = "results.csv"
RESULTS_JSONL = "results.jsonl"


def append_line(path: str, line: str) -> None:
    """Append ``line`` (a newline is added) atomically with respect to other appenders."""
    if "\n" in line:
        raise ValueError("a record must be a single line")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def metrics_text(metrics: Dict[str, float]) -> str:
    """FuxiCTR's ``print_to_list`` format: 'AUC: 0.801234 - logloss: 0.445678'."""
    return " - ".join(f"{k}: {v:.6f}" for k, v in metrics.items())


def fuxictr_line(command: str, expid: str, dataset_id: str, valid: Dict[str, float],
                 test: Dict[str, float]) -> str:
    """The line FuxiCTR's run_expid.py appends to its results csv."""
    return (f" {datetime.now().strftime('%Y%m%d-%H%M%S')},[command] {command},[exp_id] {expid},"
            f"[dataset_id] {dataset_id},[train] N.A.,[val] {metrics_text(valid)},[test] {metrics_text(test)}")


def git_revision(path: Optional[str] = None) -> str:
    """The commit of the repository holding ``path`` (this package by default), '+dirty' if modified."""
    where = path or os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def jsonable(value: Any) -> Any:
    """Config values as JSON: classes and functions by name, non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):
        return value.item()
    return getattr(value, "__name__", repr(value))


def write_result(model_root: str, record: Dict[str, Any], command: str) -> None:
    """Append one finished run to ``results.csv`` (FuxiCTR's line) and ``results.jsonl`` (the full record)."""
    append_line(os.path.join(model_root, RESULTS_CSV),
                fuxictr_line(command, record["expid"], record["dataset_id"], record["valid"], record["test"]))
    append_line(os.path.join(model_root, RESULTS_JSONL), json.dumps(jsonable(record), sort_keys=True))


def result_files(model_root: str) -> List[str]:
    """The two results files of a model root (or output folder)."""
    return [os.path.join(os.path.abspath(model_root), name) for name in (RESULTS_CSV, RESULTS_JSONL)]


def run_report(record: Dict[str, Any]) -> str:
    """What a finished run tells its user: metrics as numbers and where each of its files went."""
    lines = [f"{record['expid']} (model {record['model']}, dataset {record['dataset_id']}, seed {record['seed']}) "
             f"finished: best epoch {record.get('best_epoch')}, {record.get('fit_seconds', 0):.1f} s training"
             + (f" on {record['device']}" if record.get("device") else "")]
    for split in ("valid", "test"):
        lines.append(f"  {split:5s}  " + "   ".join(f"{k} {float(v):.6f}" for k, v in record[split].items()))
    lines.append(f"  run directory  {record['run_dir']}")
    lines.append(f"    checkpoint   {record['checkpoint']}")
    if record.get("log"):
        lines.append(f"    log          {record['log']}")
    if record.get("results_files"):
        lines.append(f"  results        {'  '.join(record['results_files'])} (one line appended to each)")
    return "\n".join(lines)


def read_records(model_root: str) -> List[Dict[str, Any]]:
    """Every record of ``results.jsonl`` (an empty list when there is none)."""
    path = os.path.join(model_root, RESULTS_JSONL)
    if not os.path.exists(path):
        return []
    records = []
    with open(path, "r", encoding="utf-8") as fd:
        for number, line in enumerate(fd, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path}, line {number}: not a JSON record ({err}): {line[:80]!r}. Repair or delete "
                                 f"that line; a bench re-run then trains that run again") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records
