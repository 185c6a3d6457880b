"""Issue 11: runs a user can trust. One test per case, through the real entry points (run_expid.py and the
``fuxictr-deres`` CLI), on generated data in tmp folders."""

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import CONFIG, REPO, TINY
from fuxictr_deres.cli import main as cli_main
from fuxictr_deres.data.demo import write_criteo_demo
from fuxictr_deres.runner import run_expid

FAST = dict(TINY, epochs=1, num_layers=1, batch_size=2048)
TINY_ARGS = [f"--set={k}={json.dumps(v)}" for k, v in FAST.items()]


def sha256(path):
    with open(path, "rb") as fd:
        return hashlib.sha256(fd.read()).hexdigest()


def tree(root):
    """Every path under ``root`` with its size, mtime and content hash (files)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns,
                                                sha256(path) if stat.S_ISREG(st.st_mode) else None)
    return out


def records(model_root):
    with open(os.path.join(model_root, "results.jsonl")) as fd:
        return [json.loads(line) for line in fd]


# ---------------------------------------------------------------- case 1: prepare never deletes the user's files

@pytest.fixture(scope="module")
def raw_criteo(tmp_path_factory):
    """A small raw Criteo train.txt (generated), kept pristine: tests copy it."""
    return write_criteo_demo(str(tmp_path_factory.mktemp("raw") / "train.txt"), 1500, 5)


def _copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(src, "rb") as a, open(dst, "wb") as b:
        b.write(a.read())
    return dst


def test_prepare_keeps_raw_files_inside_the_dataset_folder(raw_criteo, tmp_path, capsys):
    root = tmp_path / "data"
    raw = _copy(raw_criteo, str(root / "criteo" / "train.txt"))
    (root / "criteo" / "notes.txt").write_text("mine")
    before = sha256(raw)
    argv = ["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(root), "--source", raw]
    assert cli_main(argv) == 0, capsys.readouterr().err
    assert sha256(raw) == before and (root / "criteo" / "notes.txt").read_text() == "mine"
    assert (root / "criteo" / "prepared.json").is_file() and (root / "criteo" / "train" / "label.npy").is_file()
    assert cli_main(argv + ["--force"]) == 0                  # replacing its own outputs keeps the user's files
    assert sha256(raw) == before and (root / "criteo" / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(root)) == ["criteo"]             # no temporary folders left


def test_prepare_refuses_to_overwrite_a_file_it_did_not_write(raw_criteo, tmp_path, capsys):
    root = tmp_path / "data"
    raw = _copy(raw_criteo, str(root / "criteo" / "train.txt"))
    mine = root / "criteo" / "feature_map.json"
    mine.write_text('{"made": "by the user"}')
    code = cli_main(["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(root),
                     "--source", raw])
    err = capsys.readouterr().err
    assert code == 2 and "feature_map.json" in err and "--prepared_root" in err, err
    assert mine.read_text() == '{"made": "by the user"}'
    assert sorted(os.listdir(root / "criteo")) == ["feature_map.json", "train.txt"]


def test_prepare_reads_a_read_only_input_root_and_writes_elsewhere(raw_criteo, tmp_path, capsys):
    inputs, out = tmp_path / "inputs", tmp_path / "prepared"
    _copy(raw_criteo, str(inputs / "Criteo" / "train.txt"))   # the configured source path of `criteo`
    for path in (inputs / "Criteo" / "train.txt", inputs / "Criteo", inputs):
        path.chmod(0o444 if path.is_file() else 0o555)
    before = tree(str(inputs))
    try:
        code = cli_main(["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(inputs),
                         "--prepared_root", str(out)])
        assert code == 0, capsys.readouterr().err
        assert tree(str(inputs)) == before                  # nothing written, moved or touched there
    finally:
        for path in (inputs, inputs / "Criteo"):
            path.chmod(0o755)
    assert (out / "criteo" / "prepared.json").is_file()
    capsys.readouterr()
    assert cli_main(["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(inputs),
                     "--prepared_root", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_preparing_the_demo_keeps_its_generated_raw_file(demo_data_root):
    """The demo's raw file lives inside its dataset folder (demo/criteo_demo.txt): a first run used to delete it."""
    assert os.path.isfile(os.path.join(demo_data_root, "demo", "criteo_demo.txt"))
    assert os.path.isfile(os.path.join(demo_data_root, "demo", "prepared.json"))


# ---------------------------------------------------------------- case 2: one run directory per run

def test_concurrent_runs_of_one_expid_keep_their_own_checkpoints_and_metrics(demo_data_root, tmp_path):
    model_root = str(tmp_path / "models")
    procs = [subprocess.Popen([sys.executable, os.path.join(REPO, "run_expid.py"), "--config", CONFIG,
                               "--expid", "DeRes_demo", "--data_root", demo_data_root, "--model_root", model_root,
                               "--seed", str(seed), *TINY_ARGS], cwd=str(tmp_path), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
             for seed in (1, 2)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    runs = {r["seed"]: r for r in records(model_root)}
    assert sorted(runs) == [1, 2]
    dirs = {s: r["run_dir"] for s, r in runs.items()}
    assert dirs[1] != dirs[2]
    for seed, r in runs.items():
        assert os.path.dirname(dirs[seed]) == os.path.join(model_root, "demo", "DeRes_demo")
        assert os.path.basename(dirs[seed]).startswith(f"seed{seed}-")
        assert r["checkpoint"] == os.path.join(dirs[seed], "DeRes_demo.model") and os.path.isfile(r["checkpoint"])
        assert os.path.isfile(os.path.join(dirs[seed], "DeRes_demo.log"))
    assert not os.path.exists(os.path.join(model_root, "demo", "DeRes_demo.model"))
    # each run reports its own model's metrics: its checkpoint, evaluated again, gives its recorded test metrics
    from fuxictr_deres.runner import build_model, load_data
    from fuxictr_deres.config import apply_overrides, load_expid
    params = apply_overrides(load_expid(CONFIG, "DeRes_demo", data_root=demo_data_root,
                                        model_root=str(tmp_path / "eval")), FAST)
    data = load_data(params)
    for seed, r in runs.items():
        model = build_model(dict(params, seed=seed), data.feature_map)
        model.load_weights(r["checkpoint"])
        assert model.evaluate(data.loaders(params, "test")) == pytest.approx(r["test"], abs=1e-9)
    assert runs[2]["test"] != runs[1]["test"]


# ---------------------------------------------------------------- cases 3 and 12: numbers as numbers; the run's report

@pytest.fixture(scope="module")
def cli_run(demo_data_root, tmp_path_factory):
    """One `run_expid.py` run with a YAML-1.1-text learning rate (`1e-3` is a string to YAML 1.1)."""
    model_root = str(tmp_path_factory.mktemp("cli_run"))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "run_expid.py"), "--config", CONFIG,
                           "--expid", "DeRes_demo", "--data_root", demo_data_root, "--model_root", model_root,
                           *TINY_ARGS, "--set", "learning_rate=2e-3"], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    return proc, model_root


def test_numeric_text_reaches_the_optimizer_as_a_number(cli_run, capsys):
    proc, model_root = cli_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = records(model_root)
    assert record["config"]["learning_rate"] == 2e-3 and isinstance(record["config"]["learning_rate"], float)
    from fuxictr_deres.config import apply_overrides, load_expid, parse_overrides
    params = load_expid(CONFIG, "DeRes_demo")
    for text, value in (("1e-4", 1e-4), ("1e9", 1e9), ("1.e9", 1e9), ("3", 3)):
        got = apply_overrides(params, parse_overrides([f"learning_rate={text}"]))["learning_rate"]
        assert got == value and not isinstance(got, str)
    assert apply_overrides(params, parse_overrides(["epochs=1e1"]))["epochs"] == 10
    assert apply_overrides(params, parse_overrides(["embedding_regularizer=l2(1.e-5)"]))[
        "embedding_regularizer"] == "l2(1.e-5)"
    code = cli_main(["run", "--config", CONFIG, "--expid", "DeRes_demo", "--model_root", str(model_root),
                     "--set", "learning_rate=abc"])
    err = capsys.readouterr().err
    assert code == 2 and "learning_rate = 'abc' is not a number" in err, err
    code = cli_main(["run", "--config", CONFIG, "--expid", "DeRes_demo", "--model_root", str(model_root),
                     "--set", "epochs=2.5"])
    assert code == 2 and "epochs = 2.5 is not an integer" in capsys.readouterr().err


def _space(tmp_path, tuner_space):
    path = tmp_path / "DeRes_demo.yaml"
    body = "\n".join(f"    {k}: {v}" for k, v in tuner_space.items())
    path.write_text(f"base_config: {CONFIG}\nbase_expid: DeRes_demo\nfixed: {json.dumps(FAST)}\n"
                    f"tuner_space:\n{body}\n")
    return str(path)


def test_tune_reads_text_numbers_of_a_space_and_rejects_others(demo_data_root, tmp_path, capsys):
    import optuna
    space = _space(tmp_path, {"learning_rate": "[1e-3]"})          # YAML 1.1: the choice is the text '1e-3'
    out = str(tmp_path / "study")
    code = cli_main(["tune", "--space", space, "--trials", "1", "--sampler", "grid", "--data_root", demo_data_root,
                     "--out", out, "--no-progress"])
    assert code == 0, capsys.readouterr().err
    (trial,) = optuna.load_study(study_name="DeRes_demo", storage=f"sqlite:///{out}/study.db").trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
    assert trial.params["learning_rate"] == 1e-3
    bad = _space(tmp_path, {"learning_rate": "[abc]"})
    code = cli_main(["tune", "--space", bad, "--trials", "1", "--data_root", demo_data_root,
                     "--out", str(tmp_path / "bad"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "tuner_space: learning_rate = 'abc' is not a number" in err and bad in err, err


def test_end_of_run_says_where_outputs_went_and_prints_metrics(cli_run):
    proc, model_root = cli_run
    (record,) = records(model_root)
    out = proc.stdout
    assert "OrderedDict" not in out and "OrderedDict" not in proc.stderr
    assert f"run directory  {record['run_dir']}" in out and os.path.isdir(record["run_dir"])
    assert f"checkpoint   {record['checkpoint']}" in out
    assert os.path.join(model_root, "results.csv") in out and os.path.join(model_root, "results.jsonl") in out
    for split in ("valid", "test"):
        assert f"AUC {record[split]['AUC']:.6f}" in out and f"logloss {record[split]['logloss']:.6f}" in out


# ---------------------------------------------------------------- case 4: non-finite predictions stop the run

def test_diverging_run_stops_with_epoch_and_batch_and_writes_no_result(demo_data_root, tmp_path, capsys):
    model_root = str(tmp_path / "models")
    code = cli_main(["run", "--config", CONFIG, "--expid", "DeRes_demo", "--data_root", demo_data_root,
                     "--model_root", model_root, *TINY_ARGS, "--set", "learning_rate=1.e+15"])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err and "between 0 and 1" not in err
    assert "non-finite" in err and "at epoch 1, batch" in err, err[-2000:]
    assert not os.path.exists(os.path.join(model_root, "results.jsonl"))


# ---------------------------------------------------------------- cases 5, 10, 11: bench

def _bench_config(tmp_path, **settings):
    """A config folder with one expid Exp_demo (bench model `Exp`), tiny."""
    import yaml
    config = tmp_path / "config"
    (config / "model_config").mkdir(parents=True, exist_ok=True)
    with open(os.path.join(CONFIG, "model_config", "base.yaml")) as fd:
        base = yaml.safe_load(fd)
    (config / "model_config" / "base.yaml").write_text(yaml.safe_dump(base))
    exp = dict({"model": "DeRes", "dataset_id": "demo"}, **dict(FAST, **settings))
    (config / "model_config" / "exp.yaml").write_text(yaml.safe_dump({"Exp_demo": exp}))
    with open(os.path.join(CONFIG, "dataset_config.yaml")) as fd:
        (config / "dataset_config.yaml").write_text(fd.read())
    return str(config)


def test_bench_resume_retrains_a_run_whose_yaml_changed(demo_data_root, tmp_path, capsys):
    config, out = _bench_config(tmp_path), str(tmp_path / "bench")
    argv = ["bench", "--config", config, "--models", "Exp", "--datasets", "demo", "--seeds", "1", "--out", out,
            "--data_root", demo_data_root, "--reference", "Exp", "--bootstrap", "10"]
    assert cli_main(argv) == 0
    assert cli_main(argv) == 0 and "0 runs trained now" in capsys.readouterr().out
    _bench_config(tmp_path, num_layers=2)                         # the user edits the expid
    assert cli_main(argv) == 0
    assert "1 runs trained now" in capsys.readouterr().out
    layers = [r["config"]["num_layers"] for r in records(out)]
    assert layers == [1, 2]
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert len(summary) == 1 and summary[0]["num_seeds"] == 1
    from fuxictr_deres.bench.summary import bench_records
    assert [r["config"]["num_layers"] for r in bench_records(out)] == [2]


def _vm_hwm_mb():
    with open("/proc/self/status") as fd:
        return next(int(line.split()[1]) / 1024 for line in fd if line.startswith("VmHWM:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux /proc needed")
def test_bench_peak_memory_is_the_runs_own(demo_data_root, tmp_path, capsys):
    import numpy as np
    spike = np.ones(1200 << 17)                                   # 1.2 GB touched, then freed (mmap'd)
    del spike
    process_peak = _vm_hwm_mb()
    config, out = _bench_config(tmp_path), str(tmp_path / "bench")
    assert cli_main(["bench", "--config", config, "--models", "Exp", "--datasets", "demo", "--seeds", "1",
                     "--out", out, "--data_root", demo_data_root, "--reference", "Exp", "--bootstrap", "10"]) == 0
    (record,) = records(out)
    assert record["peak_memory_scope"] == "run_rss_peak"
    assert 0 < record["peak_memory_mb"] < process_peak - 800, (record["peak_memory_mb"], process_peak)


def test_two_bench_workers_on_one_folder_share_the_plan(demo_data_root, tmp_path):
    config, out = _bench_config(tmp_path), str(tmp_path / "bench")
    argv = [sys.executable, "-m", "fuxictr_deres.cli", "bench", "--config", config, "--models", "Exp",
            "--datasets", "demo", "--seeds", "1,2", "--out", out, "--data_root", demo_data_root,
            "--reference", "Exp", "--bootstrap", "10"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1")) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outs):
        assert proc.returncode == 0, stderr[-3000:]
    runs = records(out)
    assert sorted(r["seed"] for r in runs) == [1, 2]               # every key trained exactly once
    assert len({r["bench_key"] for r in runs}) == 2
    assert json.load(open(os.path.join(out, "summary.json")))[0]["num_seeds"] == 2
    for stdout, _ in outs:                                         # each worker reports the whole table
        assert "| Exp | demo |  | 1,2 |" in stdout, stdout[-1500:]


# ---------------------------------------------------------------- case 6: whole-content fingerprint

def test_same_size_edit_in_the_middle_of_a_source_is_seen(tmp_path, capsys):
    root = tmp_path / "data"
    raw = write_criteo_demo(str(root / "Criteo" / "train.txt"), 12000, 3)   # ~2.9 MB: more than head + tail
    argv = ["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(root)]
    assert cli_main(argv) == 0
    first = json.load(open(root / "criteo" / "prepared.json"))
    capsys.readouterr()
    with open(raw, "r+b") as fd:                                   # flip one label in the middle, same size
        size = os.path.getsize(raw)
        fd.seek(size // 2)
        fd.readline()
        at = fd.tell()
        label = fd.read(1)
        fd.seek(at)
        fd.write(b"1" if label == b"0" else b"0")
    assert os.path.getsize(raw) == size
    assert cli_main(argv) == 0
    assert "up to date" not in capsys.readouterr().out
    second = json.load(open(root / "criteo" / "prepared.json"))
    assert second["fingerprint"] != first["fingerprint"]
    assert second["click_rate"] != first["click_rate"]


# ---------------------------------------------------------------- case 7: bad input files name themselves

def _csv_config(tmp_path, header):
    import yaml
    config = tmp_path / "config"
    (config / "model_config").mkdir(parents=True)
    (config / "model_config" / "m.yaml").write_text(yaml.safe_dump({"Base": {}, "M_f": {"model": "DeRes",
                                                                                       "dataset_id": "f"}}))
    (config / "dataset_config.yaml").write_text(yaml.safe_dump({"f": {
        "source": {"format": "csv", "train": "F/train.csv", "valid": "F/valid.csv", "test": "F/test.csv"},
        "feature_cols": [{"name": ["user", "item"], "active": True, "dtype": "str", "type": "categorical"}],
        "label_col": {"name": "label", "dtype": "float"}}}))
    for split in ("train", "valid", "test"):
        os.makedirs(tmp_path / "data" / "F", exist_ok=True)
        (tmp_path / "data" / "F" / f"{split}.csv").write_text(header + "\n" + "\n".join(
            ",".join(["1" if i % 3 else "0", f"u{i % 7}", f"i{i % 5}"][:len(header.split(","))])
            for i in range(60)) + "\n")
    return str(config)


def test_csv_header_missing_a_feature_column_names_file_and_column(tmp_path, capsys):
    config = _csv_config(tmp_path, "label,user")
    code = cli_main(["prepare", "--config", config, "--dataset", "f", "--data_root", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and os.path.join("F", "train.csv") in err and "'item'" in err and "header" in err, err


def test_truncated_gzip_names_the_file(raw_criteo, tmp_path, capsys):
    import gzip
    data = gzip.compress(open(raw_criteo, "rb").read())
    cut = tmp_path / "train.txt.gz"
    cut.write_bytes(data[: len(data) // 2])
    code = cli_main(["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(tmp_path / "d"),
                     "--source", str(cut)])
    err = capsys.readouterr().err
    assert code == 2 and str(cut) in err and "truncated or damaged" in err, err
    assert not os.path.exists(tmp_path / "d" / "criteo")


def test_damaged_results_line_names_file_and_line(tmp_path, capsys):
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.jsonl").write_text('{"expid": "a", "seed": 1}\n{"expid": "b", "se\n')
    code = cli_main(["bench", "--config", CONFIG, "--models", "DeRes", "--datasets", "demo", "--seeds", "1",
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{out / 'results.jsonl'}, line 2" in err, err


def test_missing_prepared_array_is_rebuilt_not_called_up_to_date(raw_criteo, tmp_path, capsys):
    root = tmp_path / "data"
    argv = ["prepare", "--config", CONFIG, "--dataset", "criteo", "--data_root", str(root), "--source", raw_criteo]
    assert cli_main(argv) == 0
    os.remove(root / "criteo" / "train" / "C7.npy")
    capsys.readouterr()
    assert cli_main(argv) == 0
    assert "up to date" not in capsys.readouterr().out
    assert (root / "criteo" / "train" / "C7.npy").is_file()


# ---------------------------------------------------------------- case 8: --gpu without CUDA

@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [
    ["run", "--config", CONFIG, "--expid", "DeRes_demo"],
    ["bench", "--config", CONFIG, "--models", "DeRes", "--datasets", "demo", "--seeds", "1"],
    ["scaling", "--config", CONFIG, "--models", "DeRes", "--dataset", "demo", "--depths", "1,2,4"],
])
def test_gpu_without_cuda_is_a_clear_error(command, tmp_path, capsys):
    out = ["--model_root", str(tmp_path)] if command[0] == "run" else ["--out", str(tmp_path / "out")]
    code = cli_main(command + out + ["--gpu", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--gpu 0: CUDA is not available" in err, err
    assert not os.path.exists(tmp_path / "results.jsonl") and not os.path.exists(tmp_path / "out" / "results.jsonl")


# ---------------------------------------------------------------- case 9: overrides of keys nothing reads

def test_misspelt_override_is_rejected_with_close_matches(tmp_path, capsys):
    code = cli_main(["run", "--config", CONFIG, "--expid", "DeRes_demo", "--model_root", str(tmp_path),
                     "--set", "num_layer=8"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown key 'num_layer'" in err and "did you mean num_layers" in err, err
    code = cli_main(["bench", "--config", CONFIG, "--models", "DeRes", "--datasets", "demo", "--seeds", "1",
                     "--out", str(tmp_path / "b"), "--set", "residual_params.num_blockz=2"])
    err = capsys.readouterr().err
    assert code == 2 and "has no option 'num_blockz'" in err and "num_blocks" in err, err
    assert not os.path.exists(tmp_path / "b" / "results.jsonl")


def test_keys_read_by_a_model_or_fuxictr_are_accepted():
    from fuxictr_deres.config import apply_overrides, list_expids, load_expid
    from fuxictr_deres.expid_keys import unknown_key_message
    # constructor arguments not in any config, FuxiCTR's fit/BaseModel keys and the data loader's
    for expid, key in (("DeRes_demo", "max_gradient_norm"), ("DeRes_demo", "reduce_lr_on_plateau"),
                       ("DeRes_demo", "residual_params.num_blocks"), ("DCNv2_frappe", "num_cross_layers"),
                       ("FinalMLP_frappe", "mlp1_hidden_units"), ("DeRes_demo", "num_workers")):
        if expid in list_expids(CONFIG):
            params = load_expid(CONFIG, expid)
            assert unknown_key_message(key, params) is None, (expid, key)
    # every key of some expids of the repository passes for that expid
    for expid in ("DeRes_demo", "OneTrans_frappe", "DCNv2_frappe", "WuKong_frappe", "TokenMixerLarge_frappe"):
        if expid in list_expids(CONFIG):
            params = load_expid(CONFIG, expid)
            apply_overrides(params, {k: v for k, v in params.items() if k != "data_loader"})
