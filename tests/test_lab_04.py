"""Lab 4: the toy tasks, the Q/K/V attention variants (each does what it says), and the lab's --quick run."""

import math
import runpy
from pathlib import Path

import numpy as np
import pytest
from gradcheck import gradcheck

import tinyllm
from tinyllm.data.tasks import IGNORE_INDEX, MARKERS, SEP, TASKS, VOCAB, decode, make_examples, task_batch
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.attention import CausalSelfAttention
from tinyllm.nn.attention_variants import (
    VARIANTS,
    VariantAttention,
    causal_permutations,
    record_attention,
    use_variant,
)

ROOT = Path(__file__).resolve().parents[1]
CFG = GPTConfig(vocab_size=len(VOCAB), context_length=8, n_layer=2, n_head=2, d_model=8)
B, T, C, NH, HS = 3, 7, 8, 2, 4


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def attn(variant, seed=0, std=0.5):
    """A VariantAttention with large random weights, so that the attention is far from uniform."""
    m = VariantAttention(CFG, variant)
    rng = np.random.default_rng(seed)
    m.load_state_dict({n: rng.normal(0.0, std, p.shape).astype(np.float32) for n, p in m.named_parameters()})
    return m


def x_in(seed=1):
    return tinyllm.tensor(np.random.default_rng(seed).normal(size=(B, T, C)).astype(np.float32))


def weights_and_scores(m, x):
    q, k, _ = m.qkv(x)
    return host(m.weights(q, k)), host(m.scores(q, k))


# ---------------------------------------------------------------------------- toy tasks


@pytest.mark.parametrize("task", TASKS)
def test_examples_hold_the_right_answer(task):
    n = 6
    seq = make_examples(task, 50, n, np.random.default_rng(0))
    assert seq.shape == (50, 2 * n + 2) and seq.dtype == np.int64
    assert (seq[:, 0] == MARKERS[task]).all() and (seq[:, n + 1] == SEP).all()
    x, y = seq[:, 1:n + 1], seq[:, n + 2:]
    assert x.min() >= 0 and x.max() <= 9
    want = {"copy": x, "reverse": x[:, ::-1], "sort": np.sort(x, axis=1)}[task]
    np.testing.assert_array_equal(y, want)


def test_task_batch_shifts_and_scores_only_the_answer():
    n = 5
    x, y = task_batch(TASKS, 64, n, np.random.default_rng(3))
    assert x.shape == y.shape == (64, 2 * n + 1)
    assert (y[:, :n + 1] == IGNORE_INDEX).all() and (y[:, n + 1:] != IGNORE_INDEX).all()
    np.testing.assert_array_equal(y[:, n + 1:-1], x[:, n + 2:])  # y is x shifted by one
    assert {decode([m])[0] for m in x[:, 0]} == {"C", "R", "S"}  # all three tasks drawn
    assert decode([12, 3, 1, 10, 1, 3]) == "R31=13" and decode([IGNORE_INDEX, 4]) == "_4"


def test_task_batch_is_seeded_and_checks_its_arguments():
    a = task_batch(("sort",), 4, 3, np.random.default_rng(9))
    b = task_batch(("sort",), 4, 3, np.random.default_rng(9))
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="unknown task 'add'"):
        task_batch(("add",), 4, 3, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        make_examples("copy", 2, 3, 0)


# ---------------------------------------------------------------------------- the variants


def test_baseline_is_tinyllms_causal_self_attention():
    m, ref = attn("baseline"), CausalSelfAttention(CFG)
    ref.load_state_dict(m.state_dict())
    x = x_in()
    np.testing.assert_allclose(host(m(x)), host(ref(x)), atol=1e-6)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "shuffle_k"])
def test_step_by_step_path_equals_the_fused_one_forward_and_backward(variant):
    x = x_in()
    out, grads = [], []
    for record in (False, True):
        m = attn(variant)
        m.record = record
        y = m(x)
        (y * y).sum().backward()
        out.append(host(y))
        grads.append({n: host(p.grad) for n, p in m.named_parameters()})
    np.testing.assert_allclose(out[1], out[0], atol=1e-5)
    for n in grads[0]:
        np.testing.assert_allclose(grads[1][n], grads[0][n], atol=1e-4, err_msg=n)


def test_swap_qk_is_baseline_with_the_q_and_k_projections_exchanged():
    m = attn("swap_qk")
    ref = VariantAttention(CFG, "baseline")
    state = {n: host(p).copy() for n, p in m.state_dict().items()}
    for name in ("c_attn.weight", "c_attn.bias"):  # rows 0..C-1 are q, C..2C-1 are k
        w = state[name]
        state[name] = np.concatenate([w[C:2 * C], w[:C], w[2 * C:]])
    ref.load_state_dict(state)
    x = x_in()
    np.testing.assert_allclose(host(m(x)), host(ref(x)), atol=1e-6)
    assert not np.allclose(host(m(x)), host(attn("baseline")(x)), atol=1e-3)  # and the swap changed something


def test_tie_qk_gives_a_symmetric_score_matrix_before_the_mask():
    _, S = weights_and_scores(attn("tie_qk"), x_in())
    np.testing.assert_allclose(S, S.swapaxes(-1, -2), atol=1e-6)
    _, S0 = weights_and_scores(attn("baseline"), x_in())
    assert not np.allclose(S0, S0.swapaxes(-1, -2), atol=1e-2)


def test_zero_q_gives_uniform_weights_over_the_causal_window():
    P, S = weights_and_scores(attn("zero_q"), x_in())
    assert (S == 0).all()
    uniform = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]  # row i: 1/(i+1) on j <= i
    np.testing.assert_allclose(P, np.broadcast_to(uniform, P.shape), atol=1e-6)


def test_identity_v_is_baseline_with_the_value_projection_set_to_the_identity():
    m = attn("identity_v")
    state = {n: host(p).copy() for n, p in m.state_dict().items()}
    state["c_attn.weight"][2 * C:] = np.eye(C)
    state["c_attn.bias"][2 * C:] = 0.0
    ref = VariantAttention(CFG, "baseline")
    ref.load_state_dict(state)
    x = x_in()
    np.testing.assert_allclose(host(m(x)), host(ref(x)), atol=1e-5)
    y = m(x)
    y.sum().backward()
    assert (host(m.c_attn.weight.grad)[2 * C:] == 0).all()  # the value rows take no part


def test_no_scale_multiplies_the_scores_by_sqrt_head_dim():
    _, S = weights_and_scores(attn("no_scale"), x_in())
    _, S0 = weights_and_scores(attn("baseline"), x_in())
    np.testing.assert_allclose(S, S0 * math.sqrt(HS), rtol=1e-5, atol=1e-6)


def test_shuffle_k_permutes_each_querys_keys_within_its_window():
    P, _ = weights_and_scores(attn("shuffle_k"), x_in())
    P0, _ = weights_and_scores(attn("baseline"), x_in())
    assert np.allclose(np.triu(P, 1), 0)  # nothing from the future
    for i in range(T):  # the same multiset of weights in every row, in another order
        np.testing.assert_allclose(np.sort(P[..., i, :i + 1], -1), np.sort(P0[..., i, :i + 1], -1), atol=1e-6)
    assert not np.allclose(P, P0, atol=1e-4)
    m = attn("shuffle_k")
    first, _ = weights_and_scores(m, x_in())
    again, _ = weights_and_scores(m, x_in())
    assert not np.allclose(first, again, atol=1e-4)  # fresh permutations every call


def test_causal_permutations_shuffle_only_inside_the_window():
    perm = causal_permutations(np.random.default_rng(0), (50,), 6)
    assert perm.shape == (50, 6, 6)
    for i in range(6):
        np.testing.assert_array_equal(np.sort(perm[:, i, :i + 1], -1), np.broadcast_to(np.arange(i + 1), (50, i + 1)))
        np.testing.assert_array_equal(perm[:, i, i + 1:], np.broadcast_to(np.arange(i + 1, 6), (50, 5 - i)))
    assert len({tuple(p) for p in perm[:, 5]}) > 10  # really random


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_is_causal(variant):
    m = attn(variant)
    x = host(x_in())
    x2 = x.copy()
    x2[:, 4:] += 1.0  # change the future of position 3
    m.rng = np.random.default_rng(0)
    y = host(m(tinyllm.tensor(x)))
    m.rng = np.random.default_rng(0)
    y2 = host(m(tinyllm.tensor(x2)))
    np.testing.assert_allclose(y2[:, :4], y[:, :4], atol=1e-6)
    assert not np.allclose(y2[:, 4:], y[:, 4:])


def test_shuffle_k_backward_matches_finite_differences():
    m = attn("shuffle_k").double()

    def f(x):
        m.rng = np.random.default_rng(0)  # the same permutations in every evaluation
        return m(x)

    assert gradcheck(f, [tinyllm.tensor(host(x_in())[:1, :5].astype(np.float64), requires_grad=True)])


def test_use_variant_keeps_the_weights_and_records_attention():
    tinyllm.manual_seed(0)
    model = GPT(CFG)
    idx = np.random.default_rng(0).integers(0, CFG.vocab_size, size=(2, 6))
    before, names = host(model(idx)[0]), sorted(model.state_dict())
    use_variant(model, "baseline")
    assert sorted(model.state_dict()) == names
    np.testing.assert_allclose(host(model(idx)[0]), before, atol=1e-6)
    with pytest.raises(ValueError, match="no VariantAttention"):
        record_attention(GPT(CFG))
    use_variant(model, "zero_q")
    mods = record_attention(model)
    assert len(mods) == CFG.n_layer and all(m.variant == "zero_q" for m in mods)
    model(idx)
    assert all(m.last_weights.shape == (2, CFG.n_head, 6, 6) for m in mods)
    np.testing.assert_allclose(mods[1].last_weights[0, 0, 3], [0.25] * 4 + [0, 0], atol=1e-6)


def test_bad_variants_are_clear_errors():
    with pytest.raises(ValueError, match="unknown attention variant 'tie_qv'"):
        VariantAttention(CFG, "tie_qv")
    with pytest.raises(ValueError, match="n_kv_head == n_head"):
        VariantAttention(GPTConfig(vocab_size=4, context_length=4, n_layer=1, n_head=2, d_model=8, n_kv_head=1))


# ---------------------------------------------------------------------------- the lab


@pytest.mark.slow
def test_lab_quick_runs_and_writes_its_figures(tmp_path, capsys):
    lab = runpy.run_path(str(ROOT / "examples" / "04_transformer.py"))
    report = lab["main"](["--quick", "--out", str(tmp_path)])
    for name in ("04_depth_sweep.png", "04_qkv_entropy.png", "04_qkv_curves.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert report["block_max_diff"] < 1e-4
    assert set(report["depth"]["toy"]) == set(report["depth"]["stories"]) == {1, 2, 4, 8}
    rows = {r["variant"]: r for r in report["table"]}
    assert list(rows) == list(VARIANTS)
    assert all(np.isfinite(r[t]) for r in rows.values() for t in ("copy", "reverse", "sort", "stories"))
    assert rows["zero_q"]["H_toy"] == pytest.approx(1.0, abs=1e-5)  # uniform attention has the uniform entropy
    assert rows["zero_q"]["H_stories"] == pytest.approx(1.0, abs=1e-5)
    out = capsys.readouterr().out
    assert "max |by hand - tinyllm Block|" in out and "zero_q" in out


def test_solved_at_is_the_step_from_which_accuracy_stays_high():
    lab = runpy.run_path(str(ROOT / "examples" / "04_transformer.py"))
    curve = [(s, {"copy": (0.0, acc)}) for s, acc in [(0, 0.1), (50, 0.995), (100, 0.5), (150, 0.99), (200, 1.0)]]
    assert lab["solved_at"](curve, "copy") == 150  # the blip at 50 does not count
    assert lab["solved_at"](curve[:3], "copy") == "-"
