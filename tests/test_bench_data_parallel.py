"""benchmarks/bench_data_parallel.py's ring-model fit: α and β come back from times the model made."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_data_parallel", ROOT / "benchmarks" / "bench_data_parallel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("n", [2, 4])
def test_fit_ring_recovers_latency_and_bandwidth(n):
    bench = _bench()
    alpha, beta = 80e-6, 3e9
    rows = [dict(bytes=b, seconds=alpha + 2 * (n - 1) / n * b / beta) for b in (1024, 16384, 1 << 20, 1 << 26)]
    a, b = bench.fit_ring(rows, n)
    assert a == pytest.approx(alpha, rel=1e-6) and b == pytest.approx(beta, rel=1e-6)


def test_fit_ring_keeps_small_messages_latency_when_one_large_message_is_slow():
    bench = _bench()
    rows = [dict(bytes=b, seconds=90e-6 + b / 2e9) for b in (1024, 4096, 16384, 65536, 1 << 20)]
    rows.append(dict(bytes=1 << 24, seconds=5 * (90e-6 + (1 << 24) / 2e9)))  # a protocol switch: 5x slower
    a, _ = bench.fit_ring(rows, 2)
    assert 0.5 * 90e-6 < a < 2 * 90e-6  # an absolute least-squares fit puts it near 3 ms
