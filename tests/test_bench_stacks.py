"""benchmarks/bench_stacks.py, small: the stacks agree on greedy tokens, every number is reported, the plot is drawn."""

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_stacks_small_run(tmp_path):
    pytest.importorskip("transformers", reason="pip install transformers")
    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_stacks.py"))
    assert bench["main"](["--sizes", "tiny", "--stacks", "tinyllm", "transformers", "--rounds", "1", "--threads", "1",
                          "--prompt-tokens", "8", "--new-tokens", "3", "--work", str(tmp_path / "w"),
                          "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "p.png")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    tiny = r["sizes"]["tiny"]
    assert set(tiny["stacks"]) == {"tinyllm", "transformers"}
    for name, row in tiny["stacks"].items():
        assert row["greedy_equal_to_tinyllm"], name
        assert row["prefill_tok_s_b8"] > 0 and row["decode_tok_s_b8"] > 0 and row["token_ms_p95"] >= row["token_ms_p50"]
        assert row["peak_mb"] >= row["loaded_mb"] > 0
    assert tiny["decode_weight_bytes"] == 4 * (4 * (12 * 256 * 256 + 13 * 256) + 4096 * 256 + 2 * 256)
    assert (tmp_path / "p.png").stat().st_size > 10_000
