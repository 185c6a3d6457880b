"""Data-path benchmarks: FuxiCTR's build and parquet loader against ``prepare`` and ``SeededDataLoader``.

Every measurement runs in a fresh subprocess; the parent samples the proportional set size (PSS, so shared Ray
object-store pages are not counted twice) of the child's whole process tree, Ray's raylet and workers included.
Benchmarks are commands, never tests.
"""
import json
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

CRITEO_X1 = {
    "feature_cols": [
        {"name": [f"I{i}" for i in range(1, 14)], "active": True, "dtype": "float", "type": "numeric", "fill_na": 0},
        {"name": [f"C{i}" for i in range(1, 27)], "active": True, "dtype": "str", "type": "categorical",
         "fill_na": ""}],
    "label_col": {"name": "label", "dtype": "float"},
    "min_categr_count": 1,
}


def _tree_pss_kib(root: int) -> int:
    """Sum of Pss over ``root`` and its descendants, from /proc (no psutil here)."""
    parents: Dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fd:
                    parents[int(name)] = int(fd.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fd:
                for line in fd:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def run_measured(task: str, args: dict, timeout: float = 7200) -> dict:
    """Run ``task`` in a fresh Python process; return its JSON result plus ``peak_pss_mb`` of its process tree."""
    code = f"from fuxictr_deres.data.databench import worker; worker({task!r}, {json.dumps(args)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_pss_kib(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=timeout)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark task {task} failed (exit {proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_mb"] = round(peak[0] / 1024.0, 1)
    return result


# ---------------------------------------------------------------- tasks (run inside the child)

def _fuxictr_build(workdir: str, rows: int) -> dict:
    import logging
    logging.disable(logging.WARNING)
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    start = time.perf_counter()
    fp = FeatureProcessor(feature_cols=CRITEO_X1["feature_cols"], label_col=CRITEO_X1["label_col"],
                          dataset_id="fuxictr", data_root=workdir)
    csv = {s: os.path.join(workdir, "csv", f"{s}.csv") for s in ("train", "valid", "test")}
    build_dataset(fp, train_data=csv["train"], valid_data=csv["valid"], test_data=csv["test"],
                  min_categr_count=1, data_format="csv")
    wall = time.perf_counter() - start
    return {"task": "fuxictr_build", "rows": rows, "seconds": round(wall, 2), "rows_per_s": round(rows / wall)}


def _prepare(workdir: str, raw: str, rows: int) -> dict:
    from .prepare import ensure_dataset
    params = dict(CRITEO_X1, dataset_id="ours", data_root=workdir,
                  source={"format": "criteo_tsv", "path": raw, "split": "x1", "seed": 2018})
    start = time.perf_counter()
    ensure_dataset(params, force=True)
    wall = time.perf_counter() - start
    return {"task": "prepare", "rows": rows, "seconds": round(wall, 2), "rows_per_s": round(rows / wall)}


def _feature_map(folder: str, dataset_id: str):
    from fuxictr.features import FeatureMap
    fmap = FeatureMap(dataset_id, folder)
    fmap.load(os.path.join(folder, "feature_map.json"), {})
    return fmap


def _iterate(gen) -> tuple:
    start, n = time.perf_counter(), 0
    for batch in gen:
        n += len(batch["label"])
    return n, time.perf_counter() - start


def _ours_loader(workdir: str, batch_size: int) -> dict:
    from .loader import SeededDataLoader
    folder = os.path.join(workdir, "ours")
    start = time.perf_counter()
    loader = SeededDataLoader(_feature_map(folder, "ours"), os.path.join(folder, "train"), "train",
                              batch_size=batch_size, shuffle=True, seed=1)
    setup = time.perf_counter() - start
    n, wall = _iterate(loader)
    return {"task": "ours_loader", "rows": n, "setup_s": round(setup, 2), "seconds": round(wall, 2),
            "rows_per_s": round(n / wall)}


def _fuxictr_loader(workdir: str, batch_size: int) -> dict:
    import logging
    logging.disable(logging.WARNING)
    from fuxictr.pytorch.dataloaders import RankDataLoader
    folder = os.path.join(workdir, "fuxictr")
    start = time.perf_counter()
    train, _ = RankDataLoader(_feature_map(folder, "fuxictr"), "train",
                              train_data=os.path.join(folder, "train.parquet"),
                              valid_data=os.path.join(folder, "valid.parquet"), batch_size=batch_size,
                              shuffle=True, data_format="parquet")
    setup = time.perf_counter() - start
    n, wall = _iterate(train)
    return {"task": "fuxictr_loader", "rows": n, "setup_s": round(setup, 2), "seconds": round(wall, 2),
            "rows_per_s": round(n / wall)}


_TASKS = {"fuxictr_build": _fuxictr_build, "prepare": _prepare, "ours_loader": _ours_loader,
          "fuxictr_loader": _fuxictr_loader}


def worker(task: str, args_json: str) -> None:
    """Child entry point: run one task and print its result as the last stdout line."""
    result = _TASKS[task](**json.loads(args_json))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver

def _fuxictr_csvs(raw: str, workdir: str) -> None:
    """Setup, not timed: FuxiCTR's build reads split csv files with a header; write the same x1 split."""
    import polars as pl
    from .demo import CRITEO_COLUMNS
    from .raw_chunks import RawLayout, iter_raw_frames
    from .splits import random_split_assignment
    frames = list(iter_raw_frames(RawLayout(raw, "\t", list(CRITEO_COLUMNS), False, "label")))
    df = pl.concat(frames)
    assign = random_split_assignment(df.height, (7, 2, 1), 2018)
    os.makedirs(os.path.join(workdir, "csv"), exist_ok=True)
    for k, split in enumerate(("train", "valid", "test")):
        df.filter(pl.Series(assign == k)).write_csv(os.path.join(workdir, "csv", f"{split}.csv"))
    del df, frames


def run(rows: int, workdir: str, tasks: List[str], batch_size: int = 4096, raw: Optional[str] = None,
        log=print) -> List[dict]:
    """Generate ``rows`` demo rows (unless ``raw`` is given) and run ``tasks`` in order; return the results."""
    from .demo import write_criteo_demo
    os.makedirs(workdir, exist_ok=True)
    if raw is None:
        raw = os.path.join(workdir, f"criteo_demo_{rows}.txt")
        if not os.path.exists(raw):
            start = time.perf_counter()
            write_criteo_demo(raw, rows, 2026, progress=True)
            log(f"generated {rows:,d} rows in {time.perf_counter() - start:.1f} s: {raw}")
    results = []
    for task in tasks:
        if task == "fuxictr_build":
            _fuxictr_csvs(raw, workdir)
            args = {"workdir": workdir, "rows": rows}
        elif task == "prepare":
            args = {"workdir": workdir, "raw": raw, "rows": rows}
        else:
            args = {"workdir": workdir, "batch_size": batch_size}
        result = run_measured(task, args)
        log(json.dumps(result))
        results.append(result)
    return results
