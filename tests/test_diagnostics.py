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
    assert "alpha" in out and "|a|/|y|" in out and "|a_perp|/|y|" in out and "routing removed" in out
    data = json.load(open(tmp_path / "out" / "depth_diagnostics.json"))
    assert len(data) == 2 and all(len(v) == 5 for v in data.values())
    removal = json.load(open(tmp_path / "out" / "routing_removal.json"))
    assert len(removal) == 2 and all(v["d_AUC"] == v["AUC"] - v["AUC_removed"] for v in removal.values())
    assert main(argv[:-4] + ["--expid", "DeRes_demo", "--checkpoint", str(tmp_path / "missing.model")]) == 2
    assert "missing.model" in capsys.readouterr().err


# ---------------------------------------------------------------- routing judged by its effect (issue 12, item 6)

from conftest import expid_model  # noqa: E402
from fuxictr_deres.bench.synthetic import synthetic_batch  # noqa: E402
from fuxictr_deres.diagnostics import evaluate, predict, routing_removal_effect, routing_removed  # noqa: E402

TINY_DEMO = {"num_layers": 2, "d_model": 16, "num_tokens": 4, "num_heads": 2, "ffn_ratio": 2}


def trained_like(model, seed=3):
    """Rule parameters moved off their init, as training would move them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.rule.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    return model


def test_routing_removal_equals_the_identity_only_model_with_the_same_weights():
    model = trained_like(expid_model("DeRes_demo", TINY_DEMO))
    identity = expid_model("DeRes_demo", {**TINY_DEMO, "residual_params": {"path_mode": "identity"}})
    missing, unexpected = identity.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith("rule.") for k in unexpected)
    batches = [synthetic_batch(model.feature_map, 64, seed=s) for s in range(3)]
    _, before = predict(model, batches)
    with routing_removed(model) as meaning:
        assert "gate fixed to 1" in meaning
        assert (predict(model, batches)[1] == predict(identity, batches)[1]).all()
    assert (predict(model, batches)[1] == before).all()                       # everything restored
    effect = routing_removal_effect(model, lambda: batches)
    assert effect["AUC_removed"] == evaluate(identity, batches)["AUC"]
    assert effect["logloss"] == evaluate(model, batches)["logloss"]
    assert effect["d_AUC"] == effect["AUC"] - effect["AUC_removed"]
    # moved routing changes the predictions (the AUC may keep its ranking on a few random batches)
    assert effect["d_logloss"] == effect["logloss"] - effect["logloss_removed"] and effect["d_logloss"] != 0


def test_attnres_routing_removal_is_uniform_depth_weights():
    model = trained_like(expid_model("AttnResBlock_demo", TINY_DEMO))
    batch = synthetic_batch(model.feature_map, 32)
    with routing_removed(model):
        trace = collect_trace(model, [batch])
    for entry in trace:
        m = entry["num_sources"]
        assert max(abs(v - 1.0 / m) for v in entry["alpha_mean"]) < 1e-6
    moved = collect_trace(model, [batch])
    assert any(max(abs(v - 1.0 / e["num_sources"]) for v in e["alpha_mean"]) > 1e-3 for e in moved)


def test_rules_without_routing_have_no_removal():
    model = expid_model("OneTrans_demo", TINY_DEMO)
    assert routing_removal_effect(model, lambda: [synthetic_batch(model.feature_map, 8)]) is None


def test_orthogonal_part_of_the_read():
    """At init the dual read is 0 (perp 0, h = y); attention-only SiLU reads a ~ y: large ||a||, no a_perp."""
    batch = [synthetic_batch(expid_model("DeRes_demo", TINY_DEMO).feature_map, 32)]
    at_init = collect_trace(expid_model("DeRes_demo", TINY_DEMO), batch)
    assert all(e["perp_to_identity"] == 0 and abs(e["input_off_identity"]) < 1e-6 for e in at_init)
    attn = collect_trace(expid_model("DeRes_demo", {**TINY_DEMO, "residual_params": {"path_mode": "attn"}}), batch)
    assert all(e["read_to_identity"] > 0.99 and e["perp_to_identity"] < 1e-3 for e in attn)
    moved = collect_trace(trained_like(expid_model("DeRes_demo", TINY_DEMO)), batch)
    assert all(0 < e["perp_to_identity"] <= e["read_to_identity"] + 1e-6 for e in moved)
    assert all(e["input_off_identity"] > 0 for e in moved)


def test_command_reports_unimixer_mixing(tmp_path, capsys):
    params = expid_params(CONFIG, "UniMixer_demo", {"num_layers": 1, "d_model": 16, "num_tokens": 4})
    model = build_for_measurement(params, synthetic_feature_map(params))
    torch.save(model.state_dict(), tmp_path / "u.model")
    argv = ["diagnose", "--config", CONFIG, "--out", str(tmp_path / "out"), "--synthetic-batches", "1",
            "--batch-size", "8", "--set", "num_layers=1", "--set", "d_model=16", "--set", "num_tokens=4",
            "--expid", "UniMixer_demo", "--checkpoint", str(tmp_path / "u.model")]
    assert main(argv) == 0
    assert "mixing unit 0 (tau 1, 16 blocks of 4)" in capsys.readouterr().out
    (entry,) = json.load(open(tmp_path / "out" / "mixing.json"))["UniMixer_demo (siamese)"]
    assert entry["global_from_init"] < 0.01 and entry["global_from_uniform"] < 0.05     # weak prior at tau = 1
