"""Depth diagnostics: traces of DeRes, AttnRes and mHC averaged per read, one PNG side by side, and the command
on checkpoints of models built on a synthetic FeatureMap."""

import json

import torch

from conftest import CONFIG, build_model, toy_batch
from fuxictr_deres import models
from fuxictr_deres.bench.synthetic import build_for_measurement, expid_params, synthetic_feature_map
from fuxictr_deres.cli import main
from fuxictr_deres.diagnostics import collect_trace, plot_diagnostics


def test_traces_and_plot(feature_map, tmp_path):
    traces = {}
    for rule in ("deres", "attnres_block", "mhc", "prenorm"):
        model = build_model(models.OneTrans, feature_map, residual=rule)
        traces[rule] = collect_trace(model, [toy_batch(16, seed=s) for s in range(2)])
        assert model.rule.trace is None
    assert len(traces["deres"]) == 5                                    # U + 1 reads for L = 2
    first = traces["deres"][2]
    assert len(first["alpha_mean"]) == first["num_sources"] == 2 and len(first["gate_mean"]) == 16 and first["read_to_identity"] >= 0
    assert "H_res" in traces["mhc"][0] and traces["prenorm"] == []
    path = plot_diagnostics(traces, str(tmp_path / "d.png"))
    assert (tmp_path / "d.png").stat().st_size > 0 and path.endswith("d.png")


def test_command_on_checkpoints(tmp_path, capsys):
    ckpts = []
    for expid in ("DeRes_demo", "AttnResBlock_demo"):
        params = expid_params(CONFIG, expid, {"num_layers": 2, "d_model": 16, "num_tokens": 4})
        model = build_for_measurement(params, synthetic_feature_map(params))
        ckpts.append(str(tmp_path / f"{expid}.model"))
        torch.save(model.state_dict(), ckpts[-1])
    argv = ["diagnose", "--config", CONFIG, "--out", str(tmp_path / "out"), "--synthetic-batches", "2",
            "--batch-size", "8", "--set", "num_layers=2", "--set", "d_model=16", "--set", "num_tokens=4"]
    for expid, ckpt in zip(("DeRes_demo", "AttnResBlock_demo"), ckpts):
        argv += ["--expid", expid, "--checkpoint", ckpt]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "|a|/|y|" in out
    data = json.load(open(tmp_path / "out" / "depth_diagnostics.json"))
    assert len(data) == 2 and all(len(v) == 5 for v in data.values())
    assert main(argv[:-4] + ["--expid", "DeRes_demo", "--checkpoint", str(tmp_path / "missing.model")]) == 2
    assert "missing.model" in capsys.readouterr().err
