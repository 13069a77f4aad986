"""The scaling chapter's pieces: the family's counts, the fits on known laws, a resumable sweep, the memory split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyllm.nn import GPT, GPTConfig
from tinyllm.scaling import (
    SIZES,
    fit_chinchilla,
    fit_power_law,
    flops_per_token,
    isoflop,
    memory_split,
    non_embedding_params,
    size_fields,
    sweep,
)


def test_the_family_grows_from_005m_to_19m_with_its_stated_aspect_ratio():
    counts = [non_embedding_params(*SIZES[s]) for s in SIZES]
    assert counts == sorted(counts) and len(counts) >= 7
    assert 4e4 < counts[0] < 6e4 and 1.5e7 < counts[-1] < 2.5e7
    assert all(48 <= d / L <= 64 for L, d in SIZES.values())
    assert flops_per_token(4, 192, 128) == 6 * 1_769_472 + 6 * 4 * 128 * 192


@pytest.mark.parametrize("name", ["xs", "m"])
def test_the_count_is_the_models_block_matrices(name):
    model = GPT(GPTConfig(vocab_size=65, **size_fields(name, 32)))
    blocks = sum(p.numel() for n, p in model.named_parameters() if ".h." in f".{n}" and p.ndim == 2)
    assert blocks == non_embedding_params(*SIZES[name])


def test_fit_power_law_recovers_a_known_law_and_its_interval_holds_it():
    n = np.geomspace(5e4, 2e7, 7)
    noise = 1 + 0.003 * np.random.default_rng(0).standard_normal(7)
    fit = fit_power_law(n, (1.5 + 20 * n ** -0.25) * noise, bootstrap=200)
    assert abs(fit["alpha"] - 0.25) < 0.03
    assert fit["alpha_ci"][0] <= 0.25 <= fit["alpha_ci"][1]
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law(n[:2], n[:2])


def test_fit_chinchilla_and_isoflop_recover_the_exponents():
    N = np.repeat(np.geomspace(1e5, 1e7, 5), 3)
    D = np.tile([1e6, 3e6, 1e7], 5)
    fit = fit_chinchilla(N, D, 1.7 + 400 / N**0.34 + 410 / D**0.28)
    assert abs(fit["alpha"] - 0.34) < 0.011 and abs(fit["beta"] - 0.28) < 0.011
    runs = [dict(flops=c, params=n, loss=1.7 + 400 / n**0.34 + 410 / (c / (6 * n)) ** 0.28)
            for c in (1e13, 1e14, 1e15) for n in np.geomspace(1e5, 1e8, 6)]
    assert abs(isoflop(runs)["exponent"] - 0.28 / (0.34 + 0.28)) < 0.01  # N_opt ∝ C^(β/(α+β))


def test_the_memory_split_adds_up_and_counts_the_activations():
    cfg = GPTConfig(vocab_size=30, **size_fields("xs", 32))
    m = memory_split(cfg, 4)
    assert m["optimizer"] == 8 * m["n_parameters"] and m["gradients"] == 4 * m["n_parameters"]
    assert m["parameters"] >= 4 * m["n_parameters"]
    assert m["peak"] >= m["parameters"] + m["optimizer"] + m["activations"]
    assert 0.5 < m["activations"] / m["activations_counted"] < 2.0


@pytest.mark.slow
def test_a_sweep_skips_finished_sizes_and_resumes_stopped_ones(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    settings = dict(data=str(corpus), batch_size=4, context_length=16, eval_iters=2)
    rows = sweep(["xs"], 4 * 16 * 8, tmp_path / "sw", **settings)
    assert rows[0]["steps"] == 8 and np.isfinite(rows[0]["val_loss"])
    before = (tmp_path / "sw" / "xs" / "ckpt.safetensors").read_bytes()

    import tinyllm.train as train_module
    calls = []
    real = train_module.train
    monkeypatch.setattr(train_module, "train", lambda *a, **k: calls.append(k) or real(*a, **k))
    again = sweep(["xs", "s"], 4 * 16 * 8, tmp_path / "sw", **settings)  # xs finished: skipped; s trained
    assert (tmp_path / "sw" / "xs" / "ckpt.safetensors").read_bytes() == before
    assert len(calls) == 1 and again[0]["val_loss"] == rows[0]["val_loss"]
    assert [r["size"] for r in json.loads((tmp_path / "sw" / "sweep.json").read_text())] == ["xs", "s"]
    # a larger budget: the finished 8-step run is now a stopped one, continued to 16 steps from its checkpoint
    longer = sweep(["xs"], 4 * 16 * 16, tmp_path / "sw", **settings)
    assert longer[0]["steps"] == 16 and longer[0]["curve"][0] == rows[0]["curve"][0]
    assert len(calls) == 2 and calls[-1]["resume"] is True
