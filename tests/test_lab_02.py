"""Lab 2 and 2b (positional encodings): the measurements each does what it says, the claims of the chapter
hold (no positions + no mask = permutation-equivariant; the causal mask alone leaks position), and the
--quick runs write their figures and numbers."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
from shared_data import data_file

import tinyllm
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.config import POS_ENCODINGS
from tinyllm.nn.positional import sinusoidal_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab():
    return runpy.run_path(str(ROOT / "examples" / "02_positional.py"))


@pytest.fixture(scope="module")
def ablation():
    return runpy.run_path(str(ROOT / "examples" / "02b_position_ablation.py"))


def model(enc, T=12, n_layer=2, std=None, seed=0):
    """A small random GPT; std: redraw every weight ~ N(0, std²) so that attention is far from uniform."""
    tinyllm.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=11, context_length=T, n_layer=n_layer, n_head=2, d_model=16, pos_encoding=enc))
    if std is not None:
        rng = np.random.default_rng(seed)
        m.load_state_dict({n: rng.normal(0.0, std, p.shape).astype(np.float32) for n, p in m.named_parameters()},
                          strict=False)  # lm_head.weight is wte's (tied)
    return m.eval()


def ids(n, T, seed=1):
    return np.random.default_rng(seed).integers(0, 11, size=(n, T))


# ---------------------------------------------------------------------------- the claims


@pytest.mark.parametrize("enc", POS_ENCODINGS)
def test_only_no_positions_and_no_mask_is_permutation_equivariant(ablation, enc):
    m = model(enc, std=0.3)
    x, perm = ids(3, 12), np.random.default_rng(2).permutation(12)
    causal = ablation["equivariance_gap"](m, x, perm, True)
    bidirectional = ablation["equivariance_gap"](m, x, perm, False)
    assert causal > 1e-2  # the mask alone breaks it, whatever the encoding
    if enc == "none":
        assert bidirectional < 1e-5  # a set function: outputs permute with the inputs, to float tolerance
    else:
        assert bidirectional > 1e-2  # positions break it
    assert all(a.causal for a in m.modules() if hasattr(a, "causal"))  # the gap helper restores the mask


def test_equivariance_gap_is_computed_by_hand_too():
    """The same claim without the lab's helper: permute, run, un-permute."""
    m = model("none", std=0.3)
    for a in m.modules():
        if hasattr(a, "causal"):
            a.causal = False
    x, perm = ids(2, 12), np.random.default_rng(5).permutation(12)
    with tinyllm.no_grad():
        y, y_perm = tinyllm.to_numpy(m(x)[0].data), tinyllm.to_numpy(m(x[:, perm])[0].data)
    np.testing.assert_allclose(y_perm, y[:, perm], atol=1e-5)
    assert not np.allclose(y[:, 0], y[:, 1], atol=1e-3)  # and the outputs do depend on the token


def test_causal_mask_alone_leaks_position_through_uniform_attention(ablation):
    """NoPE at init: scores ~0, so query t attends 1/(t+1) to each visible key (entropy ln(t+1)), and its
    output is a mean of t+1 values: variance ∝ 1/(t+1). Without the mask every position sees the same
    average: the variance does not depend on t."""
    m = model("none", T=32)
    x = ids(256, 32, seed=3)
    P = ablation["all_attention"](m, x)[0]  # (n, nh, T, T), first layer
    uniform = np.tril(np.ones((32, 32))) / np.arange(1, 33)[:, None]
    np.testing.assert_allclose(P, np.broadcast_to(uniform, P.shape), atol=1e-2)
    H = -(P * np.log(np.where(P > 0, P, 1.0))).sum(-1)  # (n, nh, T)
    assert (H[..., 1:] / np.log(np.arange(2, 33)) > 0.999).all()  # entropy ln(t+1): uniform
    v = ablation["first_layer_output_variance"](m, x)
    slope = np.polyfit(np.log(np.arange(1, 33)), np.log(v), 1)[0]
    assert -1.15 < slope < -0.85, slope
    ablation["set_causal"](m, False)
    v_bi = ablation["first_layer_output_variance"](m, x)
    assert v_bi.max() / v_bi.min() < 1.01  # every position averages the same 32 values
    ablation["set_causal"](m, True)


def test_linear_probe_reads_a_linear_feature_and_not_noise(ablation):
    rng = np.random.default_rng(0)
    n, T, C = 200, 16, 8
    t = np.arange(T, dtype=np.float64)
    H = rng.normal(size=(n, T, C))
    assert abs(ablation["probe_r2"](H, n // 2)) < 0.05  # no position in noise
    H[..., 3] += 2.0 * t  # one channel carries t (R² = var(2t) / (var(2t) + 1) = 0.99)
    assert ablation["probe_r2"](H, n // 2) > 0.9


def test_head_stats_on_known_patterns(ablation):
    T = 8
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    sink = np.zeros((T, T))
    sink[:, 0] = 1.0
    P = np.stack([uniform, sink])[None, None].repeat(3, axis=1)  # (L=1, n=3, nh=2, T, T)
    s = ablation["head_stats"](P)
    np.testing.assert_allclose(s["relative_entropy"], [[1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(s["first_token"], [[np.mean(1 / np.arange(T // 2 + 1, T + 1)), 1.0]])


# ---------------------------------------------------------------------------- lab 2's pieces


@pytest.mark.parametrize("enc", [e for e in POS_ENCODINGS if e != "learned"])
def test_stretched_model_agrees_with_the_original_on_its_context(lab, enc):
    m = model(enc, std=0.2)
    longer = lab["stretched"](m, 48)
    assert longer.config.context_length == 48
    x = ids(2, 48)
    with tinyllm.no_grad():
        a, b = tinyllm.to_numpy(m(x[:, :12])[0].data), tinyllm.to_numpy(longer(x)[0].data)
    np.testing.assert_allclose(b[:, :12], a, atol=1e-5)  # causal: the first T positions cannot see the rest


def test_learned_positions_cannot_be_stretched(lab):
    with pytest.raises(ValueError, match="has 12 rows"):
        lab["stretched"](model("learned"), 24)


def test_per_position_loss_averages_to_the_model_loss(lab):
    m = model("rope", std=0.1)
    x, y = ids(5, 12), ids(5, 12, seed=9)
    c = lab["per_position_loss"](m, x, y, batch=2)
    with tinyllm.no_grad():
        loss = m(x, y)[1].item()
    assert c.shape == (12,) and c.mean() == pytest.approx(loss, rel=1e-5)


def test_attention_by_distance_reads_the_last_query_backwards(lab):
    P = np.zeros((2, 1, 4, 4))
    P[:, 0, -1] = [0.1, 0.2, 0.3, 0.4]  # keys 0..3 of the last query
    np.testing.assert_allclose(lab["attention_by_distance"](P), [[0.4, 0.3, 0.2, 0.1]])


def test_closed_forms(lab):
    forms = {enc: np.asarray(lab["closed_form"](model(enc, T=32))["curves"]) for enc in POS_ENCODINGS}
    for enc in ("sinusoidal", "rope"):  # a normalized score: 1 at distance 0, smaller after
        assert forms[enc][0, 0] == pytest.approx(1.0, abs=1e-5) and (forms[enc][0, 1:] < 1).all()
    alibi = forms["alibi"]  # (nh, T): -slope·d
    slopes = -alibi[:, 1]
    np.testing.assert_allclose(alibi, -slopes[:, None] * np.arange(32), rtol=1e-5, atol=1e-6)
    assert (slopes > 0).all()
    assert forms["learned"][0, 0] == pytest.approx(1.0, abs=1e-6) and (forms["none"] == 0).all()


@pytest.mark.parametrize("enc", ["learned", "sinusoidal"])
def test_embedding_scales_measure_what_the_model_adds(lab, enc):
    """The token and position vectors' RMS as the model adds them: read x = tok + pos off the model's own
    forward (the input of its dropout), for tokens 0..V-1 at positions 0..V-1, and subtract the position part."""
    m = model(enc, T=12, std=0.05)  # vocab 11, d_model 16: sinusoidal scales wte by √16 = 4
    seen = []
    m.transformer.drop.forward = lambda x: seen.append(tinyllm.to_numpy(x.data).astype(np.float64)) or x
    with tinyllm.no_grad():
        m(np.arange(11)[None])
    x0 = seen[0][0]  # (T, C): token t at position t
    pos = (tinyllm.to_numpy(m.transformer.wpe.weight.data) if enc == "learned" else
           np.asarray(sinusoidal_table(12, 16)))
    pos = pos.astype(np.float64)
    sc = lab["embedding_scales"](m)
    assert sc["token_rms"] == pytest.approx(np.sqrt(((x0 - pos[:11]) ** 2).mean()), rel=1e-5)
    assert sc["position_rms"] == pytest.approx(np.sqrt((pos ** 2).mean()), rel=1e-6)
    if enc == "sinusoidal":
        assert sc["position_rms"] == pytest.approx(np.sqrt(0.5), rel=1e-6)  # sin² + cos² = 1 per pair
        assert sc["token_rms"] > 3 * np.sqrt((tinyllm.to_numpy(m.transformer.wte.weight.data) ** 2).mean())


# ---------------------------------------------------------------------------- the --quick runs


@pytest.mark.slow
def test_labs_quick_run_and_write_figures_and_numbers(lab, ablation, tmp_path):
    data_file("tinyshakespeare.txt")
    runs, out = tmp_path / "runs", tmp_path / "figs"
    report = lab["main"](["--quick", "--runs", str(runs), "--out", str(out)])
    for name in ("02-val-loss.png", "02-length.png", "02-distance.png"):
        assert (out / name).stat().st_size > 10_000, name
    saved = json.loads((out / "02_positional.json").read_text())
    assert list(saved["params"]) == list(POS_ENCODINGS)
    b = saved["budget"]
    T, C = b["context_length"], b["d_model"]
    for enc in POS_ENCODINGS:
        assert saved["params"]["learned"] - saved["params"][enc] == (T * C if enc != "learned" else 0)
        curve = saved["curves"][enc]
        assert curve[0][0] == 0 and curve[-1][0] == b["max_iters"] and curve[-1][1] < curve[0][1]  # it learned
        L = saved["length"][enc]
        if enc == "learned":
            assert L["loss_at"]["2T"] is None and L["loss_at"]["4T"] is None and len(L["per_position"]) == T
        else:
            assert all(np.isfinite(v) for v in L["loss_at"].values()) and len(L["per_position"]) == 4 * T
        prof = np.asarray(saved["attention_by_distance"][enc])
        assert prof.shape == (b["n_head"], T) and np.allclose(prof.sum(-1), 1.0, atol=1e-4)
    assert report["final_val_loss"] == saved["final_val_loss"]

    rep = ablation["main"](["--quick", "--runs", str(runs), "--out", str(out)])  # lab 2's runs, reused
    for name in ("02-collapse.png", "02-leak.png"):
        assert (out / name).stat().st_size > 10_000, name
    saved = json.loads((out / "02b_position_ablation.json").read_text())
    eq = saved["equivariance"]
    assert eq["none"]["bidirectional"] < 1e-5
    assert all(eq[e]["causal"] > 1e-3 for e in POS_ENCODINGS)
    assert all(eq[e]["bidirectional"] > 1e-3 for e in POS_ENCODINGS if e != "none")
    leak = saved["leak"]
    assert leak["first_layer_entropy"]["init"]["relative"] > 0.99
    assert -1.2 < leak["first_layer_variance"]["init"]["slope"] < -0.8
    for enc, row in saved["collapse"].items():
        assert 0 <= row["share_uniform"] <= 1 and 0 < row["mean_relative_entropy"] <= 1 + 1e-6
        assert np.asarray(row["relative_entropy"]).shape == (b["n_layer"], b["n_head"])
    assert rep["T"] == T
