"""model_zoo/: the committed folders are exactly what `fuxictr-deres export-zoo` writes, their code imports only
fuxictr/torch/numpy/stdlib, and each folder runs the FuxiCTR way in a clean virtual environment (fuxictr==2.3.10,
torch==2.13.0, polars<2; no fuxictr_deres) and gives the package's outputs for the same weights and batch."""

import ast
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fuxictr_deres.zoo.catalog import MODELS
from fuxictr_deres.zoo.folder import drift, folder_files
from fuxictr_deres.zoo.source import ALLOWED_IMPORTS, ZooSourceError, _third_party_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "model_zoo")
CONFIG = os.path.join(REPO, "benchmark_configs")
RESULTS = os.path.join(REPO, "docs", "results")
CLEAN_PINS = ["fuxictr==2.3.10", "torch==2.13.0", "polars<2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.mark.parametrize("model", list(MODELS))
def test_committed_folder_is_what_export_zoo_writes(model):
    changes = drift(os.path.join(ZOO, model), folder_files(model, CONFIG, RESULTS))
    assert not changes, (f"model_zoo/{model} drifted from the package: {changes[:10]}; regenerate with "
                         f"`fuxictr-deres export-zoo` and commit model_zoo/")


def test_drift_is_detected(tmp_path):
    files = folder_files("WuKong", CONFIG, RESULTS)
    folder = tmp_path / "WuKong"
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    assert drift(str(folder), files) == []
    (folder / "src" / "WuKong.py").write_text("# edited by hand\n")
    (folder / "src" / "extra.py").write_text("")
    (folder / "checkpoints").mkdir()                       # a user's run output is not generated content
    (folder / "checkpoints" / "x.model").write_text("")
    assert drift(str(folder), files) == ["stale src/extra.py", "differs src/WuKong.py"]


def test_no_package_init_at_model_zoo_root():
    """An __init__.py in model_zoo/ would shadow the fuxictr wheel's top-level model_zoo package."""
    assert not os.path.exists(os.path.join(ZOO, "__init__.py"))
    out = subprocess.run([sys.executable, "-c", "import model_zoo.LongCTR as m; print(m.__file__)"], cwd=REPO,
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "site-packages" in out.stdout


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("model", list(MODELS))
def test_zoo_code_imports_only_fuxictr_torch_numpy_stdlib(model):
    folder = os.path.join(ZOO, model)
    paths = [os.path.join(folder, "src", f) for f in os.listdir(os.path.join(folder, "src")) if f.endswith(".py")]
    paths += [os.path.join(folder, "run_expid.py"), os.path.join(folder, "fuxictr_version.py")]
    local = {"src", "fuxictr_version"}
    for path in paths:
        bad = {m for m in _imports(path) if m not in ALLOWED_IMPORTS and m not in local
               and m not in sys.stdlib_module_names}
        assert not bad, f"{path} imports {bad}"
        assert not re.search(r"^\s*(from|import)\s+fuxictr_deres", open(path).read(), re.M), path


def test_export_refuses_other_libraries():
    with pytest.raises(ZooSourceError, match="imports 'matplotlib'"):
        _third_party_check(ast.parse("import os\nimport matplotlib.pyplot as plt\n"), "x.py")


def test_model_config_has_base_test_and_default():
    import yaml
    from fuxictr.utils import load_config
    for model in MODELS:
        config = os.path.join(ZOO, model, "config")
        test = load_config(config, f"{model}_test")
        assert test["epochs"] == 1 and test["dataset_id"] == "tiny_npz" and test["model"] == model
        assert test["model_root"] == "./checkpoints/"                          # from Base
        expids = yaml.safe_load(open(os.path.join(config, "model_config.yaml")))
        assert list(expids) == ["Base", f"{model}_test", f"{model}_default"]
        assert expids[f"{model}_default"]["dataset_id"] == "TBD"            # FuxiCTR's template convention


# ---- the clean environment: built once per session

@pytest.fixture(scope="session")
def clean_venv(tmp_path_factory):
    """A virtual environment with only the three pins (NOT --system-site-packages: that would leak
    fuxictr_deres); pip reaches PyPI or the local wheel cache."""
    venv = tmp_path_factory.mktemp("clean_venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "-q", *CLEAN_PINS], capture_output=True, text=True,
                         timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    leak = subprocess.run([python, "-c", "import fuxictr_deres"], capture_output=True, text=True, cwd="/",
                          timeout=120)
    assert leak.returncode != 0, "fuxictr_deres is importable in the clean environment"
    return python


@pytest.fixture(scope="session")
def zoo_runs(clean_venv, tmp_path_factory):
    """Each folder copied out (the repository stays clean) and run as FuxiCTR's zoo does:
    `cd model_zoo/<Model> && python run_expid.py --expid <Model>_test`."""
    root = tmp_path_factory.mktemp("zoo")
    runs = {}
    for model in MODELS:
        folder = root / model
        shutil.copytree(os.path.join(ZOO, model), folder,
                        ignore=shutil.ignore_patterns("checkpoints", "tiny_csv", "*.csv", "__pycache__"))
        shutil.copytree(os.path.join(ZOO, model, "data", "sample"), folder / "data" / "sample", dirs_exist_ok=True)
        proc = subprocess.run([clean_venv, "run_expid.py", "--expid", f"{model}_test"], cwd=folder,
                              capture_output=True, text=True, env=ENV, timeout=600)
        runs[model] = (folder, proc)
    return runs


@pytest.mark.parametrize("model", list(MODELS))
def test_zoo_folder_runs_in_clean_environment(zoo_runs, model):
    folder, proc = zoo_runs[model]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    line = (folder / "config.csv").read_text().strip().splitlines()[-1]
    assert f"[exp_id] {model}_test" in line and "[dataset_id] tiny_npz" in line
    test_part = line.split("[test] ")[1]
    auc = float(test_part.split("AUC: ")[1].split()[0])
    assert 0.0 <= auc <= 1.0
    assert (folder / "checkpoints" / "tiny_npz" / f"{model}_test.model").is_file()


def test_zoo_copy_gives_the_package_outputs(zoo_runs, clean_venv, tmp_path):
    """The same checkpoint (trained by the zoo copy) and batch through the zoo src and the package's class."""
    folders = [str(zoo_runs[m][0]) for m in MODELS if zoo_runs[m][1].returncode == 0]
    assert len(folders) == len(MODELS)
    script = os.path.join(REPO, "tests", "zoo_forward.py")
    for python, flavour in ((clean_venv, "zoo"), (sys.executable, "package")):
        proc = subprocess.run([python, script, flavour, str(tmp_path / flavour), *folders], capture_output=True,
                              text=True, env=ENV, timeout=600, cwd=str(tmp_path))
        assert proc.returncode == 0, f"{flavour}: {proc.stderr[-4000:]}"
    for model in MODELS:
        zoo = np.load(tmp_path / "zoo" / f"{model}.npy")
        package = np.load(tmp_path / "package" / f"{model}.npy")
        assert zoo.shape == (50, 1)
        assert np.array_equal(zoo, package), f"{model}: max |diff| {np.abs(zoo - package).max()}"
