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


def test_round_robin_rotates_the_order():
    from fuxictr_deres.speed import interleaved_step_times
    calls = []
    res = interleaved_step_times([lambda: calls.append("a"), lambda: calls.append("b"), lambda: calls.append("c")],
                                 rounds=3, warmup=0)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [len(t) for t in res["times"]] == [3, 3, 3] and res["median_ratios"][0] == 1.0


def test_command_with_a_fuxictr_reference_prints_flop_ratios(capsys):
    assert main(["speed", "--config", CONFIG, "--expid", "DeRes_demo", "--expid", "OneTrans_demo",
                 "--reference", "DCNv2_demo", "--batch-size", "16", "--pairs", "2", "--warmup", "1", "--synthetic",
                 "--set", "num_layers=1", "--set", "d_model=16", "--set", "num_tokens=4"]) == 0
    out = capsys.readouterr().out
    assert "DCNv2_demo: step" in out and out.count("samples/s, model FLOP/s") == 3
    assert "model FLOP/s relative to the reference DCNv2_demo (same rounds): DeRes_demo " in out
    assert "step time ratio DeRes_demo / OneTrans_demo: median" in out
