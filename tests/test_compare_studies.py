"""`scripts/compare_studies.py` and the rows it prints: budget figures and the best-validation trial's test AUC."""

import importlib.util
import os

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from fuxictr_deres.tuning.compare import best_trial_row, format_study_rows
from fuxictr_deres.tuning.storage import open_storage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "compare_studies.py")
LR = {"learning_rate": FloatDistribution(1e-4, 1e-2, log=True)}


def add(study, state, lr, epochs, valid=None, test=None):
    attrs = {"epochs": epochs, "overrides": {"learning_rate": lr}}
    if valid is not None:
        attrs.update(valid_AUC=valid, test_AUC=test)
    study.add_trial(create_trial(state=state, value=valid if state == TrialState.COMPLETE else None,
                                 params={"learning_rate": lr}, distributions=LR, user_attrs=attrs))


def filled(storage="inmemory", name="s"):
    study = optuna.create_study(study_name=name, storage=None if storage == "inmemory" else storage,
                                direction="maximize")
    add(study, TrialState.COMPLETE, 1e-3, 10, valid=0.95, test=0.94)
    add(study, TrialState.PRUNED, 2e-3, 1)
    add(study, TrialState.COMPLETE, 5e-4, 12, valid=0.96, test=0.93)   # best on valid, not on test
    add(study, TrialState.FAIL, 3e-3, 0)
    return study


def test_row_reports_the_best_validation_trial_and_its_test_figure():
    row = best_trial_row(filled())
    assert (row["trials"], row["complete"], row["pruned"], row["failed"]) == (4, 2, 1, 1)
    assert row["epochs"] == 23
    assert row["best_trial"] == 2 and row["valid_AUC"] == 0.96 and row["test_AUC"] == 0.93
    assert row["params"] == {"learning_rate": 5e-4}
    lines = format_study_rows([row])
    assert len(lines) == 3
    assert lines[2] == "| s | 4 (2/1/1) | 23 | 2 | 0.960000 | 0.930000 | learning_rate=0.0005 | not reached |"


def test_first_cuts_the_study_and_target_counts_the_epochs_to_reach_it():
    row = best_trial_row(filled(), first=2, target=0.95)
    assert (row["trials"], row["complete"], row["pruned"], row["epochs"]) == (2, 1, 1, 11)
    assert row["best_trial"] == 0 and row["test_AUC"] == 0.94
    assert row["epochs_to_target"] == 10          # trial 0 reached 0.95 after its own 10 epochs
    assert best_trial_row(filled(), target=0.955)["epochs_to_target"] == 23    # trial 2, after 10 + 1 + 12
    assert format_study_rows([best_trial_row(filled(), target=0.95)])[2].endswith("| 10 |")


def test_row_of_a_study_without_complete_trials_says_so():
    study = optuna.create_study(direction="maximize")
    add(study, TrialState.PRUNED, 1e-3, 1)
    row = best_trial_row(study)
    assert row["best_trial"] is None and row["test_AUC"] is None
    assert "| n/a | n/a |" in format_study_rows([row])[2]


def test_script_reads_journals_and_names_the_study_it_needs(tmp_path, capsys):
    path = str(tmp_path / "study.journal")
    filled(open_storage(f"journal:{path}"), "first")
    script = load_script()
    script.main([f"journal:{path}"])
    assert "| first | 4 (2/1/1) |" in capsys.readouterr().out
    filled(open_storage(f"journal:{path}"), "second")
    with pytest.raises(SystemExit, match=r"holds studies \['first', 'second'\]; name one as .*#STUDY"):
        script.main([f"journal:{path}"])
    script.main([f"journal:{path}#second", f"journal:{path}#first", "--first", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("| second | 2 (1/1/0) | 11 | 0 |") and out[3].startswith("| first | 2 (1/1/0) |")
    with pytest.raises(SystemExit, match="--first: expected a positive number"):
        script.main([f"journal:{path}#first", "--first", "0"])
    with pytest.raises(SystemExit, match="no study 'third'"):
        script.main([f"journal:{path}#third"])


def load_script():
    spec = importlib.util.spec_from_file_location("compare_studies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
