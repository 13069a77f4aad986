"""Lab 3 (attention): multi-head attention equals a loop over heads, and the lab's --quick run."""

import json
import os
import runpy
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm import functional as F
from tinyllm.nn import GPTConfig
from tinyllm.nn.attention import CausalSelfAttention
from tinyllm.viz import attention_maps as am

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "03_attention.py"))


@pytest.mark.parametrize("n_head,n_kv_head,bias", [(1, 1, True), (4, 4, True), (4, 2, False), (6, 3, True),
                                                   (4, 1, False)])
def test_multi_head_attention_is_a_loop_over_heads(lab, n_head, n_kv_head, bias):
    tinyllm.manual_seed(n_head + n_kv_head)
    cfg = GPTConfig(vocab_size=1, context_length=9, n_layer=1, n_head=n_head, n_kv_head=n_kv_head,
                    d_model=4 * n_head, bias=bias)
    attn = CausalSelfAttention(cfg)
    x = np.random.default_rng(1).normal(size=(3, 9, cfg.d_model)).astype(np.float32)
    with tinyllm.no_grad():
        batched = tinyllm.to_numpy(attn(tinyllm.tensor(x)).data)
    np.testing.assert_allclose(lab["heads_loop"](attn, x), batched, atol=2e-6)
    # and the loop sees what it should: a different head layout gives a different answer
    if n_head > 1:
        attn.c_attn.weight.data[:cfg.head_dim] *= 2.0  # scale head 0's queries only
        with tinyllm.no_grad():
            changed = tinyllm.to_numpy(attn(tinyllm.tensor(x)).data)
        assert not np.allclose(changed, batched, atol=1e-4)
        np.testing.assert_allclose(lab["heads_loop"](attn, x), changed, atol=2e-6)


def test_one_head_is_causal_sdpa(lab):
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(7, 5)) for _ in range(3))
    want = tinyllm.to_numpy(F.scaled_dot_product_attention(*(tinyllm.tensor(a) for a in (q, k, v)),
                                                           is_causal=True).data)
    np.testing.assert_allclose(lab["one_head"](q, k, v), want, atol=1e-12)


def test_one_query_step_by_step(lab):
    r = lab["one_query"](log=lambda *a: None)
    w = np.array(r["weights"])
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    assert int(np.argmax(w)) == 1  # the query was built to match "cat"
    np.testing.assert_allclose(r["scaled"], np.array(r["scores"]) / 2.0)  # d = 4
    np.testing.assert_allclose(r["out"], w @ np.array(r["V"]))
    assert r["max_diff_fused"] < 1e-12


@pytest.mark.slow
def test_lab_quick_writes_its_figures_and_numbers(lab, tmp_path, capsys):
    if not (Path(os.environ.get("TINYLLM_DATA_DIR") or "/nonexistent") / "tinyshakespeare.txt").is_file():
        pytest.skip("tinyshakespeare.txt not found: set TINYLLM_DATA_DIR to the folder that holds it")
    out = tmp_path / "fig"
    report = lab["main"](["--quick", "--out", str(out), "--run-dir", str(tmp_path / "run")])
    for name in ("03-single-query.png", "03-heads.png", "03-head-stats.png", "03-head-examples.png"):
        assert (out / name).stat().st_size > 10_000, name
    saved = json.loads((out / "03_attention.json").read_text())
    assert saved["command"] == "python examples/03_attention.py --quick"
    assert all(d < 1e-5 for d in report["multi_head"].values()) and set(report["multi_head"]) == {"4/4", "4/2", "4/1"}
    tr = report["trained"]
    L, H = tr["config"]["n_layer"], tr["config"]["n_head"]
    assert (L, H) == (2, 4) and tr["n_windows"] == 8
    for key in ("prev", "first", "current", "local", "word_start", "space", "entropy"):
        a = np.array(tr["stats"][key])
        assert a.shape == (L, H) and ((a >= 0) & (a <= 1 + 1e-9)).all(), key
    assert all(label in am.LABELS for row in tr["labels"] for label in row)
    assert sum(tr["counts"].values()) == L * H
    assert np.array(tr["untrained"]["entropy"]).min() > 0.95  # at initialization attention is near uniform
    assert len(tr["key_profile"]) == L and len(tr["key_profile"][0]) == H
    text = capsys.readouterr().out
    assert "max |loop over heads - CausalSelfAttention|" in text and "word_start" in text
