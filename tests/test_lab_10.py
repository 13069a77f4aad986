"""Lab 10 (--quick): the grid, the tied pair, the sweep, the depth statistics and the speed rows are all there,
the figures and JSON written; the hooks' statistics equal a direct computation."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm.nn import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "10_norms_activations.py"))


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(lab, tmp_path, capsys):
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("10_grid.png", "10_tied.png", "10_dynamics.png", "10_lr_sweep.png", "10_depth.png",
                 "10_histograms.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    saved = json.loads((tmp_path / "10_norms_activations.json").read_text())
    assert saved["command"].endswith("--quick --out " + str(tmp_path))
    assert len(report["grid"]) == 12 and all(np.isfinite(r["final_mean"]) for r in report["grid"].values())
    assert report["corpus"]["vocab_size"] > 0 and report["corpus"]["unigram_val_loss"] > 0
    assert all(len(r["grad_norm_last_by_seed"]) == 1 for r in report["grid"].values())  # quick: one seed
    assert set(report["tied"]) == {"LN-gelu-pre", "LN-gelu-post"}
    assert len(report["lr_sweep"]) == 2 and all(len(row) == 2 for row in report["lr_sweep"].values())
    for when in ("init", "trained"):
        rows = report["depth"][when]["LN-relu-pre"]
        assert len(rows) == 2 and all(0 <= r["dead"] <= 1 and r["grad_rms"] > 0 for r in rows)
        assert all(1 <= r["stream_top_channel"] <= r["stream_max_over_rms"] for r in rows)
    assert report["speed"][0]["rms_over_ln"] > 0
    assert "dead ReLU" in capsys.readouterr().out


def test_the_hooks_see_what_the_model_computes(lab):
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=2, n_head=2, d_model=16, activation="relu",
                          norm_position="post"))
    x = np.random.default_rng(0).integers(0, 11, (3, 8))
    rows = lab["activation_stats"](model, x, x)
    h = model.transformer.wte(tinyllm.tensor(x).data) + model.transformer.wpe(tinyllm.arange(8))  # ids on the device
    for i, block in enumerate(model.transformer.h):  # recompute the stream block by block
        h = block(h)
        s = tinyllm.to_numpy(h.data)
        assert rows[i]["stream_rms"] == pytest.approx(float(np.sqrt((s.astype(np.float64) ** 2).mean())), rel=1e-6)
        assert rows[i]["stream_rms"] == pytest.approx(1.0, abs=1e-3)  # post-norm: each block ends normalized
    assert all(0 <= r["zero"] <= 1 for r in rows) and all(r["grad_rms"] > 0 for r in rows)
    # the largest channel's RMS over the tokens, over the stream's RMS: recomputed from the last block's output
    s64 = s.reshape(-1, 16).astype(np.float64)  # (tokens, d_model)
    top = np.sqrt((s64 ** 2).mean(axis=0)).max() / np.sqrt((s64 ** 2).mean())
    assert rows[-1]["stream_top_channel"] == pytest.approx(float(top), rel=1e-6)
    assert lab["kurtosis"](np.random.default_rng(0).normal(size=200_000)) == pytest.approx(0.0, abs=0.05)
    assert not any(m._hooks for m in model.modules())  # every handle removed
