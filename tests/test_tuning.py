"""Optuna tuning on the demo data: pruning, failed trials, resume after a kill, worker processes, export, grid.

Tiny models (1 layer, d 16), one epoch evaluated every 2 steps, one torch thread (two threads on a shared 2-core
machine spin instead of working).
"""

import os
import socket
import subprocess
import sys

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from fuxictr_deres.errors import ConfigError
from fuxictr_deres.tuning.recovery import INTERRUPTED_ATTR, RETRY_ATTR, WORKER_ATTR
from fuxictr_deres.tuning.space import load_base_params, load_space, parse_space
from fuxictr_deres.tuning.study import StudyOptions, run_study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "benchmark_configs")
TINY = {"num_tokens": 4, "d_model": 16, "num_layers": 1, "head_hidden_units": [16], "epochs": 1,
        "eval_steps": 2, "batch_size": 4096}

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def write_space(folder, name="DeRes_demo", fixed=None, **sections) -> str:
    content = {"base_config": CONFIGS, "base_expid": "DeRes_demo", "fixed": {**TINY, **(fixed or {})}, **sections}
    path = os.path.join(str(folder), f"{name}.yaml")
    with open(path, "w") as fd:
        yaml.safe_dump(content, fd)
    return path


class PruneFirstReport(optuna.pruners.BasePruner):
    """Prunes the first trial that reports (deterministic, whatever the grid order)."""

    def prune(self, study, trial) -> bool:
        return not study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))


@pytest.fixture(scope="module")
def studied(tmp_path_factory, data_root):
    """A grid of 4: num_heads 3 does not divide d_model 16 (2 failures), one pruned, one complete."""
    folder = tmp_path_factory.mktemp("study")
    space = write_space(folder, tuner_space={"num_heads": [2, 3], "learning_rate": [1.e-3, 1.e-2]})
    opts = StudyOptions(space_path=space, trials=4, out=str(folder / "out"), sampler="grid", data_root=data_root,
                        progress=False)
    return opts, run_study(opts, pruner=PruneFirstReport())


def test_study_prunes_records_failures_and_goes_on(studied):
    _, study = studied
    trials = study.get_trials()
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "FAIL", "FAIL", "PRUNED"]
    for t in trials:
        if t.state == TrialState.FAIL:
            assert t.params["num_heads"] == 3
            assert "num_heads=3 must divide d_model=16" in t.user_attrs["error"]
        if t.state == TrialState.PRUNED:
            assert list(t.intermediate_values) == [0] and t.user_attrs["epochs"] == pytest.approx(0.5)
    done = study.best_trial
    assert done.value == done.user_attrs["valid_AUC"]
    assert 0 < done.user_attrs["test_AUC"] < 1 and done.user_attrs["test_logloss"] > 0
    assert done.user_attrs["epochs"] == pytest.approx(1.0) and len(done.intermediate_values) == 2


def test_outputs_and_exported_expid_reproduces_best_trial(studied, tmp_path):
    from fuxictr_deres.runner import run_expid
    from fuxictr_deres.tuning.outputs import write_outputs
    opts, study = studied
    lines = write_outputs(study, opts)
    out = opts.resolved().out
    with open(os.path.join(out, "trials.csv")) as fd:
        header, *rows = fd.read().splitlines()
    assert header.split(",") == ["number", "state", "params", "valid_logloss", "valid_AUC", "test_logloss",
                                 "test_AUC", "epochs", "error"]
    assert len(rows) == 4 and os.path.isfile(os.path.join(out, "trials.md"))
    assert os.path.isfile(os.path.join(out, "optimization_history.png"))
    assert any("param_importances.png skipped" in line for line in lines)     # a single completed trial
    best = study.best_trial
    record = run_expid(out, "DeRes_demo_tuned", model_root=str(tmp_path), write=False)
    assert record["valid"]["AUC"] == best.user_attrs["valid_AUC"]                # same seed: bit for bit on CPU
    assert record["config"]["num_heads"] == best.params["num_heads"]
    # the portable copy: the same expid without this machine's folders
    with open(os.path.join(out, "model_config", "DeRes_demo_tuned.yaml")) as fd:
        runnable = yaml.safe_load(fd)["DeRes_demo_tuned"]
    with open(os.path.join(out, "DeRes_demo_tuned.yaml")) as fd:
        text = fd.read()
    portable = yaml.safe_load(text)["DeRes_demo_tuned"]
    assert "prepared_root" in runnable and "prepared_root" not in portable
    assert portable == {k: v for k, v in runnable.items() if k != "prepared_root"}
    assert os.path.abspath(out) not in text and str(tmp_path) not in text
    assert "--config OUT --expid DeRes_demo_tuned" in text.splitlines()[1]


def test_a_repeated_configuration_is_answered_from_its_first_trial_not_retrained(tmp_path, data_root):
    """Two choices, five trials: at least three repeats, each answered at 0 epochs from the first trial with the
    same parameters (its value when it completed, pruned when it was pruned)."""
    space = write_space(tmp_path, tuner_space={"learning_rate": [1.e-3, 1.e-2]})
    opts = StudyOptions(space_path=space, trials=5, out=str(tmp_path / "out"), sampler="random",
                        data_root=data_root, progress=False)
    trials = run_study(opts, pruner=PruneFirstReport()).get_trials()
    first = {}
    for t in trials:
        first.setdefault(t.params["learning_rate"], t)
    assert len(first) == 2 and trials[0].state == TrialState.PRUNED
    repeats = [t for t in trials if first[t.params["learning_rate"]] is not t]
    assert len(repeats) == 3
    for t in repeats:
        origin = first[t.params["learning_rate"]]
        assert t.user_attrs["duplicate_of"] == origin.number and t.user_attrs["epochs"] == 0
        assert t.state == origin.state and not t.intermediate_values
        if origin.state == TrialState.COMPLETE:
            assert t.value == origin.value and t.user_attrs["test_AUC"] == origin.user_attrs["test_AUC"]
    assert all("duplicate_of" not in t.user_attrs for t in first.values())
    with open(os.path.join(opts.resolved().out, "results.jsonl")) as fd:
        assert len(fd.read().splitlines()) == 1                     # only the one completed training is recorded
    from fuxictr_deres.tuning.report import trial_rows
    notes = {int(r["number"]): r["error"] for r in trial_rows(optuna.load_study(
        study_name="DeRes_demo", storage=opts.resolved().storage), load_space(space), ["AUC"])}
    for t in repeats:
        assert notes[t.number] == f"same parameters as trial {t.user_attrs['duplicate_of']}: not trained"


def _dead_worker() -> dict:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return {"host": socket.gethostname(), "pid": int(proc.stdout), "start": 0}


def test_resume_keeps_completed_trials_and_retries_a_killed_one(tmp_path, data_root):
    space = write_space(tmp_path, search_space={"learning_rate": {"type": "float", "low": 1.e-4, "high": 1.e-2,
                                                                  "log": True}})
    opts = StudyOptions(space_path=space, trials=1, out=str(tmp_path / "out"), sampler="random", pruner="none",
                        data_root=data_root, progress=False)
    first = run_study(opts).get_trials()
    assert [t.state for t in first] == [TrialState.COMPLETE]
    # a worker killed mid-trial leaves its trial RUNNING in the storage
    study = optuna.load_study(study_name="DeRes_demo", storage=opts.resolved().storage)
    killed = study.ask()
    lr = killed.suggest_float("learning_rate", 1.e-4, 1.e-2, log=True)
    killed.set_user_attr(WORKER_ATTR, _dead_worker())
    opts.trials = 3
    trials = run_study(opts).get_trials()
    assert trials[0].state == TrialState.COMPLETE and trials[0].value == first[0].value
    assert trials[0].datetime_complete == first[0].datetime_complete
    assert trials[1].state == TrialState.FAIL and "killed" in trials[1].user_attrs[INTERRUPTED_ATTR]
    assert [t.state for t in trials[2:]] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[2].user_attrs[RETRY_ATTR] == 1 and trials[2].params["learning_rate"] == lr
    assert trials[3].params != trials[0].params          # the resumed sampler does not replay its first draws
    # nothing is owed any more: another run trains nothing
    assert len(run_study(opts).get_trials()) == 4


def test_two_worker_processes_share_a_journal_study(tmp_path, data_root):
    space = write_space(tmp_path, search_space={"learning_rate": {"type": "float", "low": 1.e-4, "high": 1.e-2,
                                                                  "log": True}})
    opts = StudyOptions(space_path=space, trials=2, out=str(tmp_path / "out"), sampler="random", pruner="none",
                        storage="journal:" + str(tmp_path / "journal.log"), n_jobs=2, data_root=data_root,
                        progress=False)
    trials = run_study(opts).get_trials()
    assert [t.number for t in trials] == [0, 1]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    pids = {t.user_attrs[WORKER_ATTR]["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids                          # processes, not threads
    assert trials[0].params != trials[1].params                                # workers draw with seed + i


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_the_tune_command_stops_its_workers(tmp_path, data_root):
    """``kill`` of a multi-worker ``tune`` must not leave its workers training on as orphans."""
    import signal
    import time
    space = write_space(tmp_path, fixed={"epochs": 100, "early_stop_patience": 100},
                        search_space={"learning_rate": {"type": "float", "low": 1.e-4, "high": 1.e-2, "log": True}})
    out, workers, log = tmp_path / "out", set(), tmp_path / "stderr.txt"
    with open(log, "w") as errors:                  # the child keeps its own copy of the descriptor
        parent = subprocess.Popen([sys.executable, "-m", "fuxictr_deres", "tune", "--space", space, "--trials", "2",
                                   "--sampler", "random", "--pruner", "none", "--n-jobs", "2", "--data_root",
                                   data_root, "--out", str(out), "--no-progress"], stdout=subprocess.DEVNULL,
                                  stderr=errors)
    try:
        deadline = time.time() + 300
        while len(workers) < 2 and time.time() < deadline and parent.poll() is None:
            time.sleep(1.0)
            if os.path.exists(out / "study.db"):
                study = optuna.load_study(study_name="DeRes_demo", storage=f"sqlite:///{out / 'study.db'}")
                workers = {t.user_attrs[WORKER_ATTR]["pid"] for t in study.get_trials(states=(TrialState.RUNNING,))
                           if WORKER_ATTR in t.user_attrs}
        assert len(workers) == 2, log.read_text() if parent.poll() is not None else "no workers"
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=60) != 0
        deadline = time.time() + 30
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.5)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        for pid in [pid for pid in workers if _alive(pid)] + ([parent.pid] if parent.poll() is None else []):
            os.kill(pid, signal.SIGKILL)


def test_grid_sampler_reproduces_fuxictr_grid(tmp_path):
    from fuxictr.autotuner import enumerate_params
    base = tmp_path / "base"
    base.mkdir()
    with open(base / "model_config.yaml", "w") as fd:
        yaml.safe_dump({"Base": {"debug_mode": False, "learning_rate": 1.e-3},
                        "DeRes_t": {"model": "DeRes", "dataset_id": "t", "num_heads": 4, "num_layers": 2,
                                    "head_hidden_units": [64]}}, fd)
    with open(base / "dataset_config.yaml", "w") as fd:
        yaml.safe_dump({"t": {"data_format": "npz", "batch_size": 4096}}, fd)
    # a list for a dataset key (batch_size) breaks FuxiCTR 2.3.10's own grid: with npz it keeps only the last
    # value (every combination gets the same dataset id), with csv it raises KeyError 'model_id'; so only a scalar
    tuner_space = {"learning_rate": [1.e-3, 5.e-4, 1.e-4], "num_heads": [2, 4], "num_layers": 3,
                   "head_hidden_units": [[64], [128, 64]], "batch_size": 1024}
    path = tmp_path / "DeRes_t.yaml"
    with open(path, "w") as fd:   # one file read by both: FuxiCTR's tuner config is our space format
        yaml.safe_dump({"base_config": str(base), "base_expid": "DeRes_t", "tuner_space": tuner_space}, fd)
    generated = enumerate_params(str(path))
    with open(os.path.join(generated, "dataset_config.yaml")) as fd:
        datasets = yaml.safe_load(fd)
    space = load_space(str(path))
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid_search_space(), seed=1))
    ours = []
    study.optimize(lambda trial: ours.append(space.suggest(trial, "grid")) or 0.0, n_trials=100)
    fuxictr_points = []   # FuxiCTR puts dataset keys (batch_size) into hashed dataset ids: map them back
    with open(os.path.join(generated, "model_config.yaml")) as fd:
        for c in yaml.safe_load(fd).values():
            point = {k: c[k] for k in tuner_space if k in c}
            point.update({k: datasets[c["dataset_id"]][k] for k in tuner_space if k not in c})
            fuxictr_points.append(repr([point[k] for k in tuner_space]))
    assert len(ours) == len(fuxictr_points) == 3 * 2 * 2 == space.grid_size()
    assert sorted(repr([o[k] for k in tuner_space]) for o in ours) == sorted(fuxictr_points)


@pytest.mark.parametrize("sections, message", [
    ({"tuner_space": {"num_headz": [2, 4]}}, "tuner_space.num_headz: unknown key 'num_headz'"),
    ({"tuner_space": {"num_heads": []}}, "tuner_space.num_heads is an empty list"),
    ({"search_space": {"learning_rate": {"type": "float", "low": 0.1, "high": 0.01}}}, "low = 0.1 > high = 0.01"),
    ({"search_space": {"learning_rate": {"type": "float", "low": "abc", "high": 0.01}}}, "low = 'abc' is not a number"),
    ({"search_space": {"learning_rate": {"type": "uniform", "low": 0.1, "high": 1}}}, "type = 'uniform'"),
    ({"search_space": {"num_heads": {"type": "categorical", "choices": []}}}, "choices must be a non-empty list"),
    ({"tuner_space": {"min_categr_count": [1, 2]}}, "min_categr_count cannot be tuned"),
    ({"tuner_space": {"residual_params.num_blockz": [2, 4]}}, "has no option 'num_blockz'"),
    ({"tuner_space": {"num_heads": [2]}, "serach_space": {}}, "unknown top-level key(s) ['serach_space']"),
])
def test_bad_spaces_name_the_file_and_key(tmp_path, sections, message):
    path = write_space(tmp_path, **sections)
    with pytest.raises(ConfigError) as err:
        load_base_params(load_space(path))
    assert message in str(err.value) and path in str(err.value)


def test_list_valued_and_nested_options_reach_the_params():
    space = parse_space("x.yaml", {"base_config": CONFIGS, "base_expid": "DeRes_demo",
                                   "tuner_space": {"head_hidden_units": [[64], [128, 64]]},
                                   "search_space": {"residual_params.num_blocks": {"type": "int", "low": 2,
                                                                                    "high": 8, "step": 2}}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(8):
        trial = study.ask()
        overrides = space.suggest(trial, "tpe")
        study.tell(trial, 0.0)
        seen.add(repr(overrides["head_hidden_units"]))
        assert overrides["residual_params.num_blocks"] in (2, 4, 6, 8)
    assert seen == {"[64]", "[128, 64]"}
    from fuxictr_deres.config import apply_overrides
    base = {"residual_params": {"path_mode": "dual"}}
    assert apply_overrides(base, {"residual_params.num_blocks": 4}) == {
        "residual_params": {"path_mode": "dual", "num_blocks": 4}}
    assert base == {"residual_params": {"path_mode": "dual"}}


def test_repository_spaces_are_valid():
    folder = os.path.join(REPO, "tuning")
    missing = []
    paths = sorted(p for p in os.listdir(folder) if p.endswith(".yaml"))
    for name in ("DeRes", "OneTrans", "AttnResBlock", "mHC", "TokenMixerLarge"):
        for dataset in ("criteo", "avazu", "frappe"):
            assert f"{name}_{dataset}.yaml" in paths
    for name in paths:
        space = load_space(os.path.join(folder, name))
        space.dimensions("grid"), space.dimensions("tpe")
        try:
            load_base_params(space)
        except ConfigError as err:
            if "unknown expid" not in str(err):
                raise
            missing.append(space.base_expid)
    if missing:
        pytest.skip(f"base expids not in benchmark_configs yet: {missing}")


def test_committed_study_spaces_are_valid_and_shared():
    """The equal-budget studies of DeRes and OneTrans (docs/results/tuning_converged_frappe) search one space."""
    folder = os.path.join(REPO, "docs", "results", "tuning_converged_frappe")
    spaces = {m: load_space(os.path.join(folder, f"{m}_space.yaml")) for m in ("DeRes", "OneTrans")}
    for space in spaces.values():
        load_base_params(space)
        space.dimensions("grid"), space.dimensions("tpe")
    assert spaces["DeRes"].grid.keys() == spaces["OneTrans"].grid.keys()
    assert spaces["DeRes"].ranges.keys() == spaces["OneTrans"].ranges.keys()
    assert {k: vars(v) for k, v in spaces["DeRes"].ranges.items()} == \
        {k: vars(v) for k, v in spaces["OneTrans"].ranges.items()}


def test_cli_compare_grid_prints_both_budgets(tmp_path, data_root, capsys):
    from fuxictr_deres.cli import main
    space = write_space(tmp_path, tuner_space={"learning_rate": [1.e-3, 1.e-2]})
    assert main(["tune", "--compare-grid", "--space", space, "--trials", "1", "--out", str(tmp_path / "cmp"),
                 "--data_root", data_root, "--no-progress", "--pruner-warmup", "2", "--tpe-startup", "5"]) == 0
    printed = capsys.readouterr().out
    assert "best validation" in printed and "training epochs" in printed and "Optuna reached" in printed
    assert os.path.isfile(tmp_path / "cmp" / "compare.json")
    assert os.path.isfile(tmp_path / "cmp" / "grid" / "model_config" / "DeRes_demo_tuned.yaml")


def test_median_pruner_warmup_spares_the_first_rounds():
    from fuxictr_deres.tuning.study import make_pruner
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", epochs=10, warmup=2))
    for _ in range(5):
        trial = study.ask()
        for step in range(4):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    weak = study.ask()
    decisions = []
    for step in range(4):
        weak.report(0.1, step)
        decisions.append(weak.should_prune())
    assert decisions == [False, False, True, True]


def test_tpe_startup_sets_the_random_trials_before_tpe():
    from fuxictr_deres.tuning.study import make_sampler
    def drawn(startup):
        study = optuna.create_study(sampler=make_sampler("tpe", None, seed=7, tpe_startup=startup))
        study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=4)
        return [t.params["x"] for t in study.trials]

    short, default = drawn(2), drawn(10)
    assert drawn(None) == default  # None leaves Optuna's default (10)
    assert short[:2] == default[:2]  # the same seeded random start
    assert short[2:] != default[2:]  # then TPE's choices instead of further random draws


@pytest.mark.parametrize("field", ["pruner_warmup", "tpe_startup"])
def test_negative_pruner_warmup_or_tpe_startup_is_refused(tmp_path, field):
    opts = StudyOptions(space_path="s.yaml", trials=1, out=str(tmp_path), **{field: -1})
    with pytest.raises(ValueError, match=f"--{field.replace('_', '-')} \\(-1\\)"):
        opts.resolved()


def test_pruner_warmup_travels_to_a_distributed_trial(tmp_path):
    from fuxictr_deres.tuning.distributed_trial import _open_trial
    from fuxictr_deres.tuning.study import _trial_link
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    opts = StudyOptions(space_path="s.yaml", trials=1, out=str(tmp_path), storage=storage, study_name="s",
                        pruner_warmup=4)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for _ in range(5):                            # the median pruner's start-up trials set the median
        done = study.ask()
        for step in range(6):
            done.report(1.0, step)
        study.tell(done, 1.0)
    link = _trial_link(opts, 10, study.ask())
    assert link.pruner_warmup == 4
    rank0 = _open_trial(link)                     # the trial as rank 0 of the launched training sees it
    decisions = []
    for step in range(6):
        rank0.report(0.1, step)
        decisions.append(rank0.should_prune())
    assert decisions == [False] * 4 + [True] * 2  # spared through the warm-up, then pruned
