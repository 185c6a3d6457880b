"""The command line: `python -m fuxictr_deres` is `fuxictr-deres`, every subcommand's --help ends with an example,
`list` filters expids by model and dataset, and the Optuna major version is pinned."""

import configparser
import os
import subprocess
import sys

import optuna
import pytest

from fuxictr_deres.cli import build_parser, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_python_m_is_the_console_script():
    script = os.path.join(os.path.dirname(sys.executable), "fuxictr-deres")
    a = subprocess.run([sys.executable, "-m", "fuxictr_deres", "list", "--model", "WuKong", "--dataset", "demo"],
                       capture_output=True, text=True, cwd=REPO, env=ENV, timeout=300)
    b = subprocess.run([script, "list", "--model", "WuKong", "--dataset", "demo"], capture_output=True, text=True,
                       cwd=REPO, env=ENV, timeout=300)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "WuKong_demo" in a.stdout
    help_a = subprocess.run([sys.executable, "-m", "fuxictr_deres", "--help"], capture_output=True, text=True,
                            cwd=REPO, env=ENV, timeout=300).stdout
    assert help_a.startswith("usage: fuxictr-deres") and "export-zoo" in help_a and "list" in help_a


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_subcommand_help_ends_with_an_example(name):
    text = _subparsers()[name].format_help().rstrip().splitlines()
    assert text[-2] == "example:", f"`fuxictr-deres {name} --help` does not end with an example"
    assert text[-1].strip().startswith(f"fuxictr-deres {name}")


def test_list_filters_by_model_and_dataset(capsys):
    assert main(["list", "--config", os.path.join(REPO, "benchmark_configs"), "--model", "DeRes",
                 "--dataset", "frappe"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith("  DeRes")]
    assert "DeRes_frappe" in rows and "DeRes_AttnOnly_frappe" in rows
    assert all(r.endswith("_frappe") for r in rows) and "OneTrans_frappe" not in out
    assert main(["list", "--config", os.path.join(REPO, "benchmark_configs"), "--datasets"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "criteo_tsv (generated)" in out and "expids in" not in out


def test_list_says_what_exists_when_nothing_matches(capsys):
    assert main(["list", "--config", os.path.join(REPO, "benchmark_configs"), "--model", "NoSuchModel"]) == 0
    out = capsys.readouterr().out
    assert "0 of" in out and "models: " in out and "DeRes" in out


def test_optuna_major_version_is_pinned():
    setup = configparser.ConfigParser()
    setup.read(os.path.join(REPO, "setup.cfg"))
    requires = setup["options"]["install_requires"].split()
    assert "optuna>=5,<6" in requires
    assert optuna.__version__.split(".")[0] == "5"
