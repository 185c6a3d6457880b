"""Scaling-law fits recover known parameters on synthetic curves; the seed bootstrap interval covers gamma."""

import numpy as np
import pytest

from conftest import CONFIG
from fuxictr_deres.scaling.fits import (PowerLawAUC, compute_multiplier, depth_match, fit_f1, fit_f2, fit_f3,
                                        gamma_with_interval)

COMPUTE = np.array([1.0, 2.0, 4.0, 8.0, 16.0]) * 3.2e6          # depth 1..16 at a few MFLOPs per layer
TRUE = PowerLawAUC(A=0.812, B=0.9, gamma=0.118)


def rel(a, b):
    return abs(a - b) / abs(b)


def test_f1_noise_free():
    fit = fit_f1(COMPUTE, TRUE(COMPUTE))
    assert rel(fit.A, TRUE.A) < 1e-3 and rel(fit.B, TRUE.B) < 1e-3 and rel(fit.gamma, TRUE.gamma) < 1e-3
    assert fit.A > TRUE(COMPUTE).max()


def test_f2_and_f3_noise_free():
    auc = 0.7 + 0.0042 * np.log2(COMPUTE)
    f2 = fit_f2(COMPUTE, auc)
    assert rel(f2["gamma"], 0.42) < 1e-3 and rel(f2["a"], 70.0) < 1e-3
    f3 = fit_f3(COMPUTE, 2.5 * COMPUTE ** -0.07)
    assert rel(f3["A"], 2.5) < 1e-3 and rel(f3["alpha"], 0.07) < 1e-3


def test_f1_noisy_within_tolerance():
    rng = np.random.default_rng(0)
    c = np.geomspace(1e6, 1e8, 9)
    fit = fit_f1(c, PowerLawAUC(0.80, 3.0, 0.2)(c) + rng.normal(0, 2e-4, len(c)))
    assert rel(fit.gamma, 0.2) < 0.15 and abs(fit.A - 0.80) < 2e-3


def test_bootstrap_interval_covers_true_gamma():
    rng = np.random.default_rng(3)
    seeds = [TRUE(c) + rng.normal(0, 3e-4, 5) for c in COMPUTE]   # 5 seeds per depth
    res = gamma_with_interval(COMPUTE, seeds, num_boot=150, seed=1)
    low, high = res["gamma_ci"]
    assert low <= TRUE.gamma <= high and low < res["gamma"] < high


def test_compute_multiplier_and_depth_match():
    ref = PowerLawAUC(0.80, 0.9, 0.071)
    method = PowerLawAUC(0.80, 0.9, 0.118)
    c = 1e7
    mult = compute_multiplier(method, ref, c)
    assert ref(c * mult) == pytest.approx(method(c), abs=1e-12) and mult > 1
    assert compute_multiplier(ref, ref, c) == pytest.approx(1.0)
    match = depth_match({1: 0.7, 8: 0.79, 16: 0.8}, {1: 0.7, 8: 0.78, 16: 0.785})
    assert match == {"method_depth": 8, "reference_depth": 16, "method_auc": 0.79, "reference_auc": 0.785,
                     "reaches": True}


def test_report_from_stored_records(tmp_path, capsys):
    """gather -> analyse -> report/figure on records written by the one results writer (no training)."""
    from fuxictr_deres.bench.harness import RunSpec
    from fuxictr_deres.cli import main
    from fuxictr_deres.results import write_result
    out = str(tmp_path)
    rng = np.random.default_rng(0)
    curves = {"DeRes": PowerLawAUC(0.812, 0.9, 0.118), "OneTrans": PowerLawAUC(0.812, 0.9, 0.071)}
    for model, curve in curves.items():
        for depth, c in zip([1, 2, 4, 8, 16], COMPUTE):
            for seed in (1, 2, 3):
                spec = RunSpec(model, "demo", seed, {"epochs": 1, "num_layers": depth})
                auc = float(curve(c) + rng.normal(0, 2e-4))
                write_result(out, {"expid": spec.expid, "dataset_id": "demo", "seed": seed, "valid": {},
                                   "test": {"AUC": auc, "logloss": float(2.5 * c ** -0.05)},
                                   "bench_key": f"{model}-{depth}-{seed}", "bench_model": model, "bench_variant": spec.variant,
                                   "flops_per_sample": float(c)}, "test")
    assert main(["scaling", "--config", CONFIG, "--models", "DeRes,OneTrans", "--dataset", "demo",
                 "--out", out, "--set", "epochs=1", "--report-only", "--bootstrap", "40"]) == 0
    text = capsys.readouterr().out
    assert "gamma / gamma_OneTrans" in text and "DeRes at L=8" in text and "reaches OneTrans at L=16" in text
    for name in ("scaling.md", "scaling.json", "scaling.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_falling_auc_gives_a_flat_fit_and_no_multiplier(tmp_path):
    """AUC that falls with depth (an under-trained sweep) puts F1's gamma at its bound: the report must call the
    gamma ratio and compute multiplier undefined instead of printing 1.00 and 0.00x."""
    from fuxictr_deres.commands.scaling import report_markdown
    from fuxictr_deres.scaling.fits import is_flat
    from fuxictr_deres.scaling.sweep import MethodPoints, analyse
    falling = [[0.940, 0.939], [0.933, 0.934], [0.930, 0.931], [0.928, 0.929]]
    rising = [[TRUE(c) + d for d in (-1e-4, 1e-4)] for c in COMPUTE[:4]]
    points = {"DeRes": MethodPoints("DeRes", [1, 2, 4, 8], list(COMPUTE[:4]), rising, rising),
              "OneTrans": MethodPoints("OneTrans", [1, 2, 4, 8], list(COMPUTE[:4]), falling, falling)}
    res = analyse(points, "OneTrans", num_boot=20)
    assert is_flat(res["OneTrans"]["f1"]) and not is_flat(res["DeRes"]["f1"])
    assert "compute_multiplier" not in res["DeRes"] and "gamma_ratio" not in res["DeRes"]
    assert "lower bound for OneTrans" in res["DeRes"]["undefined"]
    text = report_markdown(res, "OneTrans", "demo")
    assert "undefined (flat fit)" in text and "at bound (AUC not rising)" in text and "0.00x" not in text

    # the figure draws the flat method's F2 line (its falling slope), the rising one's F1 curve
    from fuxictr_deres.scaling.figure import _curve_and_label, scaling_figure
    grid = np.asarray(COMPUTE[:4], np.float64)
    flat_curve, flat_style, flat_label = _curve_and_label("OneTrans", res["OneTrans"], grid)
    f2 = res["OneTrans"]["f2"]
    assert flat_style == "--" and f2["gamma"] < 0 and f"F2 {f2['gamma']:+.3f}" in flat_label
    assert np.allclose(flat_curve, (f2["a"] + f2["gamma"] * np.log2(grid)) / 100)
    rising_curve, rising_style, rising_label = _curve_and_label("DeRes", res["DeRes"], grid)
    assert rising_style == "-" and rising_label.startswith("DeRes: gamma=")
    assert np.allclose(rising_curve, res["DeRes"]["f1"](grid))
    path = scaling_figure(res, str(tmp_path / "scaling.png"), "demo")
    assert (tmp_path / "scaling.png").stat().st_size > 0 and path.endswith("scaling.png")
