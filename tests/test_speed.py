"""Speed command: runs and prints the ratio and throughput fields (no timing assertions)."""

from fuxictr_deres.cli import main
from fuxictr_deres.speed import step_time_ratio
from conftest import CONFIG


def test_ratio_alternates_and_counts_pairs():
    calls = []
    res = step_time_ratio(lambda: calls.append("a"), lambda: calls.append("b"), pairs=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"] and len(res["ratios"]) == 3


def test_command_prints_fields(capsys):
    assert main(["speed", "--config", CONFIG, "--expid", "DeRes_demo", "--expid", "OneTrans_demo",
                 "--batch-size", "16", "--pairs", "2", "--warmup", "1", "--synthetic", "--set", "num_layers=1",
                 "--set", "d_model=16", "--set", "num_tokens=4"]) == 0
    out = capsys.readouterr().out
    assert "step time ratio DeRes_demo / OneTrans_demo: median" in out
    assert out.count("GFLOP/s") >= 4 and "samples/s" in out and "matmul throughput" in out
