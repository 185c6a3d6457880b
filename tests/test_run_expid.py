"""End to end through the real entry points (run_expid.py, the CLI, the runner) on the generated demo data."""

import json
import os
import subprocess
import sys

import pytest

from conftest import CONFIG, REPO, TINY
from fuxictr_deres.cli import main as cli_main
from fuxictr_deres.runner import run_expid

TINY_ARGS = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]


@pytest.fixture
def data_root(demo_data_root):
    return demo_data_root


@pytest.mark.parametrize("expid", ["DeRes_demo", "OneTrans_demo"])
def test_run_expid_script_trains_and_writes_results(expid, data_root, tmp_path):
    model_root = str(tmp_path / "ckpt")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "run_expid.py"), "--config", CONFIG,
                           "--expid", expid, "--data_root", data_root, "--model_root", model_root, *TINY_ARGS],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(model_root, "results.jsonl")) as fd:
        records = [json.loads(line) for line in fd]
    assert len(records) == 1
    record = records[0]
    assert record["expid"] == expid and record["dataset_id"] == "demo"
    assert record["test"]["AUC"] > 0.65, record["test"]
    assert record["num_params"] > 0 and record["config"]["d_model"] == 16
    with open(os.path.join(model_root, "results.csv")) as fd:
        line = fd.read()
    assert f"[exp_id] {expid},[dataset_id] demo" in line and "[test] logloss:" in line
    assert os.path.isfile(record["checkpoint"])
    assert os.path.dirname(record["run_dir"]) == os.path.join(model_root, "demo", expid)


def test_same_seed_gives_identical_metrics(data_root, tmp_path):
    runs = [run_expid(CONFIG, "DeRes_demo", data_root=data_root, model_root=str(tmp_path / f"r{i}"),
                      overrides=TINY, write=False) for i in range(2)]
    assert runs[0]["valid"] == runs[1]["valid"]
    assert runs[0]["test"] == runs[1]["test"]
    routing = runs[0]["routing_removal_test"]         # dual DeRes: h = y when removed, on the test split
    assert routing["removed"].startswith("gate fixed to 1") and routing["AUC"] == pytest.approx(runs[0]["test"]["AUC"])
    assert routing["d_AUC"] == pytest.approx(routing["AUC"] - routing["AUC_removed"]) and routing["d_AUC"] != 0
    other = run_expid(CONFIG, "DeRes_demo", data_root=data_root, model_root=str(tmp_path / "r2"),
                      overrides=dict(TINY, seed=7), write=False)
    assert other["test"] != runs[0]["test"]


def run_cli(args, capsys):
    code = cli_main(["run", *args])
    return code, capsys.readouterr().err


def test_unknown_expid_names_close_matches(capsys, tmp_path):
    code, err = run_cli(["--config", CONFIG, "--expid", "DeRes_critoe", "--model_root", str(tmp_path)], capsys)
    assert code == 2 and "unknown expid 'DeRes_critoe'" in err and "DeRes_criteo" in err


def write_config(tmp_path, expid_settings, dataset_settings=None):
    config = tmp_path / "config"
    (config / "model_config").mkdir(parents=True)
    import yaml
    with open(os.path.join(CONFIG, "model_config", "base.yaml")) as fd:
        base = yaml.safe_load(fd)
    with open(os.path.join(CONFIG, "dataset_config.yaml")) as fd:
        datasets = yaml.safe_load(fd)
    datasets.update(dataset_settings or {})
    (config / "model_config" / "base.yaml").write_text(yaml.safe_dump(base))
    (config / "model_config" / "exp.yaml").write_text(yaml.safe_dump({"Exp_demo": expid_settings}))
    (config / "dataset_config.yaml").write_text(yaml.safe_dump(datasets))
    return str(config)


@pytest.mark.parametrize("settings,message", [
    ({"model": "NoSuchModel"}, "unknown model='NoSuchModel'"),
    ({"model": "DeRes", "residual": "nosuchrule"}, "unknown residual='nosuchrule'"),
    ({"model": "DeRes", "residual_params": {"bogus": 1}}, "unknown option(s) ['bogus']"),
    ({"model": "DeRes", "residual_params": {"path_mode": "both"}}, "residual_params.path_mode='both'"),
    ({"model": "DeRes", "num_heads": 3}, "num_heads=3 must divide d_model=16"),
    ({"model": "DeRes", "tokenizer": "perfield", "num_tokens": 5}, "num_tokens must equal the number of fields (39)"),
    ({"model": "DeRes", "learning_rate": "abc"}, "expid Exp_demo: learning_rate = 'abc' is not a number"),
])
def test_bad_hyperparameters_get_a_clear_error(settings, message, data_root, tmp_path, capsys):
    config = write_config(tmp_path, dict({"dataset_id": "demo", **TINY}, **settings))
    code, err = run_cli(["--config", config, "--expid", "Exp_demo", "--data_root", data_root,
                         "--model_root", str(tmp_path / "ckpt")], capsys)
    assert code == 2, err
    assert message in err
    assert not os.path.exists(tmp_path / "ckpt" / "results.jsonl")


def test_missing_data_files_name_the_file_and_the_command(tmp_path, capsys):
    config = write_config(tmp_path, {"model": "DeRes", "dataset_id": "frappe"})
    code, err = run_cli(["--config", config, "--expid", "Exp_demo", "--data_root", str(tmp_path / "nodata"),
                         "--model_root", str(tmp_path / "ckpt")], capsys)
    assert code == 2
    assert os.path.join("Frappe_x1", "train.csv") in err and "fuxictr-deres prepare" in err


def test_unknown_dataset_id_is_named(tmp_path, capsys):
    config = write_config(tmp_path, {"model": "DeRes", "dataset_id": "fraype"})
    code, err = run_cli(["--config", config, "--expid", "Exp_demo", "--model_root", str(tmp_path)], capsys)
    assert code == 2 and "unknown dataset_id 'fraype'" in err and "frappe" in err
