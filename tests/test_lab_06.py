"""Lab 6 (--quick): the cache's logits equal a full forward, greedy text is the same, the memory formula holds,
the prefix cache's logits equal a full forward, and the figures and JSON are written; the benchmark's --quick."""

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(tmp_path, capsys):
    lab = runpy.run_path(str(ROOT / "examples" / "06_kv_cache.py"))
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("06_speed.png", "06_prefix_hits.png", "06_prefix_budget.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert "<!DOCTYPE html>" in (tmp_path / "06_prefix_hits.html").read_text()
    assert json.loads((tmp_path / "06_kv_cache.json").read_text())["prefix"]["n_requests"] == 8

    holds = report["holds"]
    assert holds["max_abs_diff"] < 1e-5 and holds["same_text"]
    assert holds["cache_bytes"] == holds["formula_bytes"]
    assert all(r["bytes"] == r["formula"] for r in report["memory"])
    assert [r["n"] for r in report["speed"]["rows"]] == [16, 32, 64]
    # the reported speedup is the ratio of the measured times (timing itself is noise)
    for r in report["speed"]["rows"]:
        assert r["speedup"] == pytest.approx(r["uncached_s"] / r["cached_s"]) and r["cached_s"] > 0

    pre = report["prefix"]
    assert pre["max_abs_diff"] < 1e-5 and report["long_prefix"]["max_abs_diff"] < 1e-5
    assert pre["per_request"][0] == 0 and 0 < pre["hit_rate"] < 1  # the first request finds nothing cached
    rates = [b["hit_rate"] for b in pre["budgets"]]
    assert rates[0] == 0 and rates[-1] == pytest.approx(pre["hit_rate"])  # no budget: no reuse; a big one: all of it
    out = capsys.readouterr().out
    assert "max |cached logits - full forward|" in out and "hit rate by budget" in out


def test_requests_share_openings_and_fit_the_context():
    lab = runpy.run_path(str(ROOT / "examples" / "06_kv_cache.py"))
    texts = lab["make_requests"](24, seed=0, ctx=64)
    assert len(texts) == 24 and all(len(t) <= 64 for t in texts)
    assert {t.split("\n")[0] for t in texts} <= {o.split("\n")[0] for o in lab["OPENINGS"]}
    assert len(set(texts)) < 24  # some requests repeat exactly: the entirely-cached case shows up


@pytest.mark.slow
def test_benchmark_quick_runs_and_reports_the_memory_formula(tmp_path):
    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_kv_cache.py"))
    r = bench["main"](["--quick", "--json", str(tmp_path / "b.json"), "--figures", str(tmp_path)])
    assert r["same_tokens"] and [s["n"] for s in r["speed"]] == [16, 32, 64]
    assert [s["uncached_measured"] for s in r["speed"]] == [True, True, False]  # 64 > 48: estimated, and marked
    assert all(m["cache_bytes"] == m["formula_bytes"] for m in r["memory"])
    assert all(c["same_tokens"] for c in r["decode"]["configs"].values())  # part 5: no cache, modules, Decoder
    assert (tmp_path / "06_bench_decode.json").exists()
    for name in ("06_bench_speed.png", "06_bench_per_token.png", "06_bench_memory.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    again = bench["main"](["--plot-only", "--json", str(tmp_path / "b.json"), "--figures", str(tmp_path / "re")])
    assert again["speed"] == json.loads((tmp_path / "b.json").read_text())["speed"]
