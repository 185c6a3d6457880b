"""export-bars: BARS folders from a results store, with a results.csv that BARS' comma-splitting parser reads."""

import csv
import os

import yaml

from fuxictr_deres.cli import main
from fuxictr_deres.results import write_result


def _store(tmp_path):
    out = tmp_path / "bench"
    (out / "logs").mkdir(parents=True)
    for seed in (1, 2):
        key = f"k{seed}"
        (out / "logs" / f"{key}.log").write_text(f"training log of seed {seed}\n")
        record = {"expid": "DeRes_frappe", "model": "DeRes", "dataset_id": "frappe", "seed": seed,
                  "valid": {"logloss": 0.3, "AUC": 0.93}, "test": {"logloss": 0.31, "AUC": 0.92 + seed / 1000},
                  "time": "2026-12-02T10:11:12", "bench_key": key, "bench_model": "DeRes",
                  "overrides": {"head_hidden_units": [64, 32], "epochs": 4},
                  "config": {"model": "DeRes", "dataset_id": "frappe", "model_root": str(out / "checkpoints"),
                             "data_root": "/somewhere", "feature_cols": [{"name": "user", "type": "categorical"}],
                             "label_col": {"name": "label"}, "num_layers": 4, "residual": "deres"}}
        write_result(str(out), record, "fuxictr-deres bench --models DeRes,OneTrans --datasets frappe")
    return out


def test_export_bars_writes_the_bars_layout(tmp_path):
    store = _store(tmp_path)
    assert main(["export-bars", "--results", str(store), "--out", str(tmp_path / "bars")]) == 0
    folder = tmp_path / "bars" / "ranking" / "ctr" / "DeRes" / "DeRes_frappe_x1"
    assert sorted(os.listdir(folder)) == ["DeRes_frappe_x1.log", "DeRes_frappe_x1_config", "README.md",
                                          "environments.txt", "results.csv"]
    log = (folder / "DeRes_frappe_x1.log").read_text()
    assert "training log of seed 1" in log and "training log of seed 2" in log
    env = (folder / "environments.txt").read_text()
    assert env.startswith("[Hardware]") and "fuxictr: 2.3.10" in env
    model_config = yaml.safe_load((folder / "DeRes_frappe_x1_config" / "model_config.yaml").read_text())
    assert model_config["DeRes_frappe_x1"]["num_layers"] == 4 and "model_root" not in model_config["DeRes_frappe_x1"]
    dataset_config = yaml.safe_load((folder / "DeRes_frappe_x1_config" / "dataset_config.yaml").read_text())
    assert dataset_config["frappe"]["label_col"] == {"name": "label"}


def test_results_csv_quotes_a_command_with_commas(tmp_path):
    store = _store(tmp_path)
    main(["export-bars", "--results", str(store), "--out", str(tmp_path / "bars")])
    text = (tmp_path / "bars" / "ranking" / "ctr" / "DeRes" / "DeRes_frappe_x1" / "results.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    assert len(rows) == 2 and all(len(r) == 7 for r in rows)
    command = rows[0][1]
    assert command.startswith("[command] python run_expid.py --config benchmark_configs --expid DeRes_frappe")
    assert "--seed 1" in command and "'head_hidden_units=[64, 32]'" in command
    assert rows[0][6] == "[test] AUC: 0.921000 - logloss: 0.310000"
    # every comma outside quotes is a field separator: no unquoted comma inside a field
    for line in text.splitlines():
        unquoted = line.split('"')[::2]
        assert sum(part.count(",") for part in unquoted) == 6


def test_export_bars_names_a_missing_log(tmp_path):
    store = _store(tmp_path)
    os.remove(store / "logs" / "k2.log")
    assert main(["export-bars", "--results", str(store), "--out", str(tmp_path / "bars")]) == 2
    assert not (tmp_path / "bars" / "ranking" / "ctr" / "DeRes" / "DeRes_frappe_x1").exists()
