"""The README's commands, run as written, so it cannot rot.

Its bash blocks are parsed; every `fuxictr-deres` / `run_expid.py` / `python my_*.py` command that targets the demo
data (or a zoo folder's tiny sample) runs in a sandbox folder that links the repository's configs (so outputs land
in the sandbox, not the repository), with the session's prepared demo data. The python blocks of the worked examples
are written out as the files they name. The venv and install lines are not run (the tests already run inside the
installed venv); they are checked against what CI (.ci/run) does.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
BIN = os.path.dirname(sys.executable)


def _blocks(language: str):
    text = open(README, encoding="utf-8").read()
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def _commands():
    """Command lines of the bash blocks, without trailing comments."""
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _ci_lines():
    lines = open(os.path.join(REPO, ".ci", "run")).read().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.startswith(("#", "set ", "cd "))]


def _normal(command: str) -> str:
    return " ".join(t for t in command.replace("--quiet", "").replace("-p no:cacheprovider", "").split())


def test_setup_commands_are_what_ci_runs():
    setups = [c for c in _commands() if c.startswith("python3 -m venv .venv")]
    assert len(setups) == 2, setups
    main_job, tests = [[s.strip() for s in c.split("&&")] for c in setups]
    ci = _ci_lines()
    assert [_normal(s) for s in tests] == [_normal(s) for s in ci], (tests, ci)
    assert main_job[0] == ci[0]
    assert _normal(main_job[1]) == _normal(ci[1]).replace('".[test]"', ".")
    assert main_job[2] == ".venv/bin/python run_expid.py --config benchmark_configs/ --expid DeRes_demo"


def _runnable(command: str) -> bool:
    if command.startswith("python3 -m venv"):
        return False
    return bool(re.search(r"demo|_test\b", command) or re.match(r"python my_\w+\.py$", command))


def _rewrite(command: str) -> str:
    command = re.sub(r"(^|&& )(\.venv/bin/)?python ", lambda m: m.group(1) + sys.executable + " ", command)
    return re.sub(r"(^|&& )(\.venv/bin/)?fuxictr-deres ", lambda m: m.group(1) + os.path.join(BIN, "fuxictr-deres ")
                  + "", command)


def test_readme_has_the_runnable_examples():
    commands = [c for c in _commands() if _runnable(c)]
    assert any("run_expid.py --config benchmark_configs/ --expid DeRes_demo" in c for c in _commands())
    assert "cd model_zoo/DeRes && python run_expid.py --expid DeRes_test" in commands
    assert {"python my_rule.py", "python my_backbone.py"} <= set(commands)
    names = [b.splitlines()[0] for b in _blocks("python")]
    assert any(n.startswith("# my_rule.py") for n in names) and any(n.startswith("# my_backbone.py") for n in names)


def test_readme_demo_commands_run(demo_data_root, tmp_path):
    sandbox = tmp_path / "clone"
    sandbox.mkdir()
    for name in ("benchmark_configs", "run_expid.py", "tuning", "docs"):
        os.symlink(os.path.join(REPO, name), sandbox / name)
    shutil.copytree(os.path.join(REPO, "model_zoo"), sandbox / "model_zoo",
                    ignore=shutil.ignore_patterns("checkpoints", "tiny_csv", "config.csv", "__pycache__"))
    for block in _blocks("python"):
        first = block.splitlines()[0]
        match = re.match(r"# (my_\w+\.py)", first)
        if match:
            (sandbox / match.group(1)).write_text(block)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FUXICTR_DERES_DATA_ROOT": demo_data_root}
    main_job = ".venv/bin/python run_expid.py --config benchmark_configs/ --expid DeRes_demo"
    commands = [main_job] + [c for c in _commands() if _runnable(c)]
    assert len(commands) >= 6
    for command in commands:
        proc = subprocess.run(_rewrite(command), shell=True, cwd=sandbox, capture_output=True, text=True, env=env,
                              timeout=900)
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if command == main_job:
            assert "DeRes_demo (model DeRes, dataset demo" in proc.stdout
            test_line = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("test ")]
            assert test_line and "AUC" in test_line[-1], proc.stdout[-2000:]
        if "my_rule.py" in command:
            assert "half residual:" in proc.stdout
        if "my_backbone.py" in command:
            assert "FFN-only backbone with DeRes:" in proc.stdout
    assert (sandbox / "model_zoo" / "DeRes" / "checkpoints" / "tiny_npz" / "DeRes_test.model").is_file()
    bars = sandbox / "results" / "bars" / "ranking" / "ctr"
    assert (bars / "DeRes" / "DeRes_demo" / "results.csv").is_file()
    assert (bars / "OneTrans" / "OneTrans_demo" / "environments.txt").is_file()
    assert not os.path.exists(os.path.join(REPO, "results", "bench_demo"))
