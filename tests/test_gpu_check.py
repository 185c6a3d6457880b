"""scripts/gpu_check.py end to end on CPU at tiny sizes (the CUDA run is the same code at the issue's sizes)."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_gpu_check_quick_on_cpu_writes_every_measurement(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), OMP_NUM_THREADS="1")
    # compiled mode needs inductor's C++ build (minutes on this machine): fp32 and bf16 here
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "gpu_check.py"), "--device", "cpu",
                           "--quick", "--modes", "fp32,bf16"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in open(tmp_path / "out" / "gpu_check.jsonl")]
    rows = [r for r in records if r["mode"] != "ddp_1proc_vs_plain"]
    ddp = [r for r in records if r["mode"] == "ddp_1proc_vs_plain"]
    assert [(r["d_model"], r["mode"]) for r in rows] == [(16, "fp32"), (16, "bf16")]
    assert len(ddp) == 1 and "error" not in ddp[0], ddp
    for r in rows:
        assert r["deres_samples_per_s"] > 0 and r["onetrans_samples_per_s"] > 0 and r["deres_peak_mb"] > 0
        assert len(r["ratios"]) == 2 and r["step_ratio_deres_over_onetrans"] > 0
    table = open(tmp_path / "out" / "gpu_check.md").read()
    assert table.count("\n| 16 | fp32 |") == 1 and table.count("\n| 16 | bf16 |") == 1


def test_gpu_check_refuses_unknown_modes(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "gpu_check.py"), "--device", "cpu",
                           "--quick", "--modes", "fp16"], env=dict(os.environ, OUT=str(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "unknown --modes ['fp16']" in proc.stderr
