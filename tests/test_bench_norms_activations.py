"""benchmarks/bench_norms_activations.py: the fused gate and its composition, which it times against each other,
compute the same gradients; a short run writes its JSON with the ratios the chapter and docs/performance.md quote."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

import tinyllm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(ROOT / "benchmarks" / "bench_norms_activations.py"))


def test_fused_and_composed_gate_agree():
    from tinyllm import functional as F

    rng = np.random.default_rng(0)
    g, u, go = (rng.normal(size=(64, 48)).astype(np.float32) for _ in range(3))
    grads = []
    for make in (lambda a, b: F.swiglu(a, b), lambda a, b: F.silu(a) * b):
        a, b = tinyllm.tensor(g, requires_grad=True), tinyllm.tensor(u, requires_grad=True)
        make(a, b).backward(tinyllm.tensor(go))
        grads.append((tinyllm.to_numpy(a.grad.data), tinyllm.to_numpy(b.grad.data)))
    for fast, composed in zip(*grads):
        np.testing.assert_allclose(fast, composed, atol=1e-5, rtol=1e-5)


def test_a_short_run_writes_its_ratios(bench, tmp_path):
    out = tmp_path / "bench.json"
    results = bench["main"](["--quick", "--repeats", "2", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["command"].endswith("--quick") and saved["machine"]["cores"] >= 1
    assert len(results) == 2
    for r in saved["results"]:
        for clock in ("cpu", "wall"):
            assert r[clock]["rms_over_layer_norm"] > 0 and r[clock]["fused_over_composed"] > 0
            assert set(r[clock]["ms"]) >= {"layer_norm", "rms_norm", "swiglu fused", "silu(g) * u"}
