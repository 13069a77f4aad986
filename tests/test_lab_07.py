"""Lab 7 (--quick): the three parts run and write their figures and JSON; the numbers hold together
(equal compute gives a window more steps, learned positions stop at T, the rolling cache's bytes stay
fixed while a full cache's grow); the benchmark's --quick; the lab's helpers on their own."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from tinyllm.nn import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]


def lab():
    return runpy.run_path(str(ROOT / "examples" / "07_long_context.py"))


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(tmp_path, capsys):
    report = lab()["main"](["--quick", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")])
    for name in ("07_window_positions.png", "07_length.png", "07_memory_wall.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert json.loads((tmp_path / "07_long_context.json").read_text())["cache"]["window"] == 16

    long = report["long"]
    assert long["full"]["steps"] == 20 and all(r["steps"] >= 20 for r in long.values())  # cheaper: more steps
    assert all(len(r["per_position"]) == 64 and r["step_cpu_s"] > 0 for r in long.values())
    learned = report["length"]["learned"]
    assert learned["loss"][3:] == [None, None, None] and learned["collapse"] == 32  # no rows past T = 16
    assert all(v is not None for r in report["length"].values() if r["encoding"] != "learned" for v in r["loss"])
    rows = report["cache"]["rows"]
    assert len({r["rolling"] for r in rows}) == 1 and rows[-1]["full"] == 10 * rows[0]["full"]
    wall = report["wall"]
    assert set(wall["fit"]) == {"a", "b", "c", "wall_T"} and {r["attention"] for r in wall["rows"]} == {"full", "flash"}
    assert "collapse" in capsys.readouterr().out


@pytest.mark.slow
def test_benchmark_quick_runs(tmp_path):
    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_attention.py"))
    r = bench["main"](["--quick", "--json", str(tmp_path / "b.json"), "--figures", str(tmp_path)])
    assert max(r["equivalence"].values()) < 1e-4  # the three kernels agree at T = 1024
    assert {(m["kernel"], m["T"]) for m in r["memory"]} >= {(k, 512) for k in ("full", "memory_efficient", "flash")}
    for name in ("07_bench_time.png", "07_bench_memory.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    again = bench["main"](["--plot-only", "--json", str(tmp_path / "b.json"), "--figures", str(tmp_path / "re")])
    assert again["time"] == json.loads((tmp_path / "b.json").read_text())["time"]


def test_flops_per_token_counts_the_window_span():
    flops = lab()["flops_per_token"]
    full = GPTConfig(vocab_size=65, context_length=512, n_layer=4, n_head=4, d_model=64)
    window = GPTConfig(vocab_size=65, context_length=512, n_layer=4, n_head=4, d_model=64, window=64)
    assert flops(full, 1000, 512) == 6 * 1000 + 12 * 4 * 64 * 512
    assert flops(window, 1000, 512) == 6 * 1000 + 12 * 4 * 64 * 64


def test_per_position_loss_of_a_uniform_model_is_log_vocab():
    ns = lab()
    model = GPT(GPTConfig(vocab_size=10, context_length=8, n_layer=1, n_head=1, d_model=4, pos_encoding="none"))
    for p in model.parameters():
        p.data[...] = 0  # every logit 0: a uniform distribution over the 10 tokens
    x = np.random.default_rng(0).integers(0, 10, (3, 8))
    np.testing.assert_allclose(ns["per_position_loss"](model, x, np.roll(x, -1, 1)), np.log(10), rtol=1e-6)
    longer = ns["with_context"](model, 16)
    assert longer.config.context_length == 16 and longer.config.window is None
