"""tinyllm.inference.sampling: each knob against a plain-Python reference, the edge cases, the sampler.

Arrays go through the default device (cpu or the strict device in CI), so a
silent trip to NumPy inside a filter fails here as it would on a GPU.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinyllm
from tinyllm import backend
from tinyllm.inference import sampling as S
from tinyllm.inference.sampling import (
    apply_penalties,
    check_sampling_args,
    entropy,
    filter_logits,
    make_rng,
    sample,
    softmax,
)

NEG = -math.inf


def dev(x):
    return backend.asarray(np.asarray(x, dtype=np.float64))


def host(x):
    return tinyllm.to_numpy(x)


# ---------------------------------------------------------------------------- plain-Python references (one row)


def ref_softmax(row):
    m = max(row)
    e = [math.exp(z - m) for z in row]
    return [v / sum(e) for v in e]


def ref_temperature(row, t):
    if t == 0:
        j = row.index(max(row))
        return [z if i == j else NEG for i, z in enumerate(row)]
    return [z / t for z in row]


def ref_top_k(row, k):
    kth = sorted(row, reverse=True)[min(k, len(row)) - 1]
    return [z if z >= kth else NEG for z in row]


def ref_top_p(row, p):
    """Walk the tokens from most to least likely until their probability reaches p; keep ties of the last one."""
    probs = ref_softmax(row)
    total, last = 0.0, None
    for z, q in sorted(zip(row, probs), reverse=True):
        total += q
        last = z
        if total >= p:
            break
    return [z if z >= last else NEG for z in row]


def ref_min_p(row, min_p):
    probs = ref_softmax(row)
    return [z if q >= min_p * max(probs) else NEG for z, q in zip(row, probs)]


def ref_penalties(row, ids, rep, pres, freq):
    out = list(row)
    for j in set(ids):
        z = out[j]
        z = z / rep if z > 0 else z * rep
        out[j] = z - pres - freq * ids.count(j)
    return out


rows = st.lists(st.floats(-8, 8, allow_nan=False), min_size=1, max_size=12)


def close_to_cut(row, p):
    """True when a cumulative probability lies within 1e-9 of p (float order then decides; skip those)."""
    total = 0.0
    for q in sorted(ref_softmax(row), reverse=True):
        total += q
        if abs(total - p) < 1e-9:
            return True
    return False


# ---------------------------------------------------------------------------- each filter against its reference


@given(rows, st.floats(0.05, 5.0))
def test_temperature_matches_reference(row, t):
    np.testing.assert_allclose(host(filter_logits(dev(row), temperature=t)), ref_temperature(row, t), rtol=1e-12)


@given(rows, st.integers(1, 14))
def test_top_k_matches_reference(row, k):
    np.testing.assert_array_equal(host(filter_logits(dev(row), top_k=k)), ref_top_k(row, k))


@given(rows, st.floats(0.01, 0.999))
def test_top_p_matches_reference(row, p):
    assume(not close_to_cut(row, p))
    np.testing.assert_array_equal(host(filter_logits(dev(row), top_p=p)), ref_top_p(row, p))


@given(rows, st.floats(0.0, 1.0))
def test_min_p_matches_reference(row, m):
    probs = ref_softmax(row)
    assume(all(abs(q - m * max(probs)) > 1e-12 for q in probs))
    np.testing.assert_array_equal(host(filter_logits(dev(row), min_p=m)), ref_min_p(row, m))


@given(rows, st.floats(0.2, 3.0), st.floats(0.05, 0.999), st.integers(1, 14), st.floats(0.0, 0.5))
def test_filters_compose_in_hugging_face_order(row, t, p, k, m):
    want = ref_top_k(ref_temperature(row, t), k)
    assume(not close_to_cut(want, p))
    want = ref_top_p(want, p)
    probs = ref_softmax(want)
    assume(all(abs(q - m * max(probs)) > 1e-12 for q in probs))
    want = ref_min_p(want, m)
    got = host(filter_logits(dev(row), temperature=t, top_k=k, top_p=p, min_p=m))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(got)], np.asarray(want)[np.isfinite(want)], rtol=1e-12)


def test_many_rows_against_the_references():
    """Hypothesis draws few examples; a seeded batch of 400 rows at many settings probes the cut points densely."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 12)) * rng.uniform(0.3, 4.0, size=(400, 1))
    for p in (0.05, 0.3, 0.5, 0.8, 0.9, 0.95, 0.999):
        got = host(filter_logits(dev(z), top_p=p))
        for b in range(len(z)):
            if not close_to_cut(list(z[b]), p):
                np.testing.assert_array_equal(got[b], ref_top_p(list(z[b]), p), err_msg=f"row {b}, top_p={p}")
    for m in (0.01, 0.1, 0.3, 0.7):
        got = host(filter_logits(dev(z), min_p=m))
        for b in range(len(z)):
            np.testing.assert_array_equal(got[b], ref_min_p(list(z[b]), m), err_msg=f"row {b}, min_p={m}")
    for k in (1, 3, 11):
        got = host(filter_logits(dev(z), top_k=k))
        for b in range(len(z)):
            np.testing.assert_array_equal(got[b], ref_top_k(list(z[b]), k))


def test_worked_examples_of_the_module_docstring():
    z = dev([1.0, 3.0, 2.0])
    assert host(filter_logits(z, top_p=0.7)).tolist() == [NEG, 3.0, 2.0]
    assert host(filter_logits(z, top_p=0.6)).tolist() == [NEG, 3.0, NEG]   # 0.67 alone reaches 0.6
    assert host(filter_logits(z, min_p=0.3)).tolist() == [NEG, 3.0, 2.0]
    assert host(filter_logits(z, min_p=0.4)).tolist() == [NEG, 3.0, NEG]   # 0.24 < 0.4 · 0.67
    assert host(filter_logits(z, temperature=0)).tolist() == [NEG, 3.0, NEG]
    assert host(filter_logits(dev([[1.0, 3.0, 2.0]]), temperature=2.0, top_k=2)).tolist() == [[NEG, 1.5, 1.0]]
    got = host(apply_penalties(dev([2.0, -1.0, 0.5]), [0, 1, 1], 2.0, 0.5, 0.25))
    np.testing.assert_allclose(got, [0.25, -3.0, 0.5])


@given(rows, st.lists(st.integers(0, 11), max_size=20), st.floats(0.5, 3.0), st.floats(-2, 2), st.floats(-2, 2))
def test_penalties_match_reference(row, ids, rep, pres, freq):
    ids = [i % len(row) for i in ids]
    got = host(apply_penalties(dev(row), np.asarray(ids, dtype=np.int64), rep, pres, freq))
    np.testing.assert_allclose(got, ref_penalties(row, ids, rep, pres, freq), rtol=1e-12, atol=1e-12)


def test_penalties_per_row_and_shared_history():
    z = np.random.default_rng(0).normal(size=(3, 6))
    ids = np.array([[0, 0, 5], [1, 2, 2], [3, 3, 3]])
    got = host(apply_penalties(dev(z), ids, 1.5, 0.3, 0.1))
    for b in range(3):
        np.testing.assert_allclose(got[b], ref_penalties(list(z[b]), list(ids[b]), 1.5, 0.3, 0.1))
    shared = host(apply_penalties(dev(z), [4, 4], repetition_penalty=2.0))  # one history for every row
    for b in range(3):
        np.testing.assert_allclose(shared[b], ref_penalties(list(z[b]), [4, 4], 2.0, 0.0, 0.0))
    off = dev(z)
    assert apply_penalties(off, ids) is off  # every penalty off: untouched, no copy


# ---------------------------------------------------------------------------- edge cases


def test_top_k_at_least_vocab_and_top_p_one_keep_everything():
    z = dev([[0.5, NEG, 2.0, -1.0]])
    for kw in (dict(top_k=4), dict(top_k=100), dict(top_p=1.0), dict(min_p=0.0), {}):
        assert host(filter_logits(z, **kw)).tolist() == [[0.5, NEG, 2.0, -1.0]], kw
    for p in (1e-300, 5e-324):  # 1 - p rounds to 1: the top token must still be kept
        assert host(filter_logits(z, top_p=p)).tolist() == [[NEG, NEG, 2.0, NEG]]


def test_ties_are_kept_together_and_greedy_takes_the_first():
    z = dev([1.0, 2.0, 2.0, 0.0])
    assert host(filter_logits(z, top_k=1)).tolist() == [NEG, 2.0, 2.0, NEG]  # a tie with the k-th is kept
    assert host(filter_logits(z, top_p=0.3)).tolist() == [NEG, 2.0, 2.0, NEG]  # the nucleus keeps the tie too
    assert host(filter_logits(z, min_p=1.0)).tolist() == [NEG, 2.0, 2.0, NEG]  # p >= 1 · p_max: the tied tops
    assert host(filter_logits(z, temperature=0)).tolist() == [NEG, 2.0, NEG, NEG]  # greedy: the first argmax
    assert int(host(sample(z, make_rng(0), greedy=True))) == 1
    uniform = dev(np.zeros(5))
    assert host(filter_logits(uniform, top_k=2)).tolist() == [0.0] * 5  # all tied: nothing can be cut
    assert host(filter_logits(uniform, top_p=0.1)).tolist() == [0.0] * 5


@given(st.lists(st.floats(-5, 5), min_size=2, max_size=10).filter(lambda r: len(set(r)) == len(r)))
def test_temperature_to_zero_is_greedy(row):
    s = sorted(row)
    assume(s[-1] - s[-2] > 1e-3)
    rng = make_rng(0)
    greedy = int(host(sample(dev(row), rng, greedy=True)))
    assert greedy == row.index(max(row))
    for t in (0.0, 1e-5, 1e-300):
        assert int(host(sample(filter_logits(dev(row), temperature=t), rng))) == greedy, t


def test_tiny_temperature_does_not_overflow_to_nan():
    out = host(filter_logits(dev([[300.0, 299.0, -5.0]]), temperature=1e-308))  # 300 / 1e-308 overflows
    assert out.tolist() == [[300.0, NEG, NEG]]


def test_minus_infinity_inputs_are_never_kept_or_drawn():
    z = dev([[NEG, 1.0, NEG, 0.5, NEG]] * 4000)
    for kw in (dict(top_p=0.99), dict(min_p=0.01), dict(top_k=4), dict(temperature=1.7)):
        out = host(filter_logits(z, **kw))
        assert np.isneginf(out[:, [0, 2, 4]]).all(), kw
        assert set(np.unique(host(sample(filter_logits(z, **kw), make_rng(1)))).tolist()) <= {1, 3}
    with pytest.raises(ValueError, match="row 1.*all -inf"):
        sample(dev([[0.0, 1.0], [NEG, NEG]]), make_rng(0))
    with pytest.raises(ValueError, match="nan"):
        sample(dev([[0.0, float("nan")]]), make_rng(0))


def test_draw_that_rounds_up_to_the_total_lands_on_a_token_with_width():
    class Top:  # a generator whose uniform is the largest double below 1
        def random(self, n):
            return np.full(n, 1.0 - 2.0**-53)

    z = dev([[0.0, 0.1, 0.3, NEG, NEG]])
    assert host(sample(z, Top())).tolist() == [2]


def test_batches_equal_rows_and_vectors_keep_their_shape():
    z = np.random.default_rng(3).normal(size=(5, 9)) * 2
    kw = dict(temperature=0.8, top_k=6, top_p=0.9, min_p=0.05)
    batch = host(filter_logits(dev(z), **kw))
    for b in range(5):
        row = host(filter_logits(dev(z[b]), **kw))
        assert row.shape == (9,)
        np.testing.assert_array_equal(row, batch[b])
    assert host(sample(dev(z), make_rng(0))).shape == (5,)
    one = sample(dev(z[0]), make_rng(0))
    assert host(one).shape == () and host(one).dtype == np.int64
    assert int(host(one)) == int(host(sample(dev(z[:1]), make_rng(0)))[0])  # same draw as a 1-row batch


def test_sample_follows_the_filtered_distribution():
    z = np.log(np.array([0.5, 0.25, 0.15, 0.1]))
    probs = softmax(filter_logits(z, top_p=0.8))  # keeps 0.5, 0.25, 0.15 -> renormalized by 0.9
    np.testing.assert_allclose(probs, [0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0.0])
    draws = host(sample(dev(np.repeat(filter_logits(z, top_p=0.8)[None], 30000, axis=0)), make_rng(0)))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 30000, probs, atol=0.012)
    again = host(sample(dev(np.repeat(z[None], 50, axis=0)), make_rng(7)))
    assert again.tolist() == host(sample(dev(np.repeat(z[None], 50, axis=0)), make_rng(7))).tolist()


def test_entropy():
    np.testing.assert_allclose(host(entropy(dev([[0.0, 0.0, 0.0, 0.0], [5.0, NEG, NEG, NEG]]))), [math.log(4), 0.0],
                               atol=1e-15)
    z = np.random.default_rng(0).normal(size=7)
    p = ref_softmax(list(z))
    np.testing.assert_allclose(float(host(entropy(dev(z)))), -sum(q * math.log(q) for q in p), rtol=1e-12)


@given(rows, st.one_of(st.integers(1, 12).map(lambda k: dict(top_k=k)),
                      st.floats(0.05, 1.0).map(lambda p: dict(top_p=p)),
                      st.floats(0.0, 1.0).map(lambda m: dict(min_p=m))))
def test_truncation_costs_minus_log_kept_mass(row, knob):
    """q = p on the kept set S, renormalized: KL(q || p) = Σ_S q log(q / p) = -log Σ_S p (the chapter's identity)."""
    z = dev(row)
    p, q = host(softmax(z)), host(softmax(filter_logits(z, **knob)))
    kept = q > 0
    kl = float((q[kept] * np.log(q[kept] / p[kept])).sum())
    assert kl == pytest.approx(-math.log(p[kept].sum()), abs=1e-12)


# ---------------------------------------------------------------------------- the property


@given(st.lists(st.one_of(st.floats(-30, 30), st.just(NEG)), min_size=1, max_size=16).filter(
           lambda r: any(math.isfinite(z) for z in r)),
       st.one_of(st.just(0.0), st.floats(1e-3, 10.0)), st.one_of(st.none(), st.integers(1, 20)),
       st.one_of(st.none(), st.floats(1e-6, 1.0)), st.one_of(st.none(), st.floats(0.0, 1.0)))
def test_kept_set_is_never_empty_and_probabilities_sum_to_one(row, t, k, p, m):
    out = host(filter_logits(dev([row, row[::-1]]), temperature=t, top_k=k, top_p=p, min_p=m))
    for b, r in enumerate((row, row[::-1])):
        kept = np.isfinite(out[b])
        assert kept.any()
        assert not (kept & np.isneginf(r)).any()  # nothing removed comes back
        probs = host(softmax(dev(out[b])))
        assert abs(probs.sum() - 1.0) < 1e-12
        assert (probs[~kept] == 0).all()
        kept_before = np.isfinite(host(filter_logits(dev(r), temperature=t, top_k=k)))
        assert not (kept & ~kept_before).any()  # each filter only removes


# ---------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("kw, message", [
    (dict(temperature=-0.1), "temperature must be a finite number >= 0"),
    (dict(temperature=math.inf), "temperature must be a finite number >= 0"),
    (dict(temperature="hot"), "temperature must be"),
    (dict(top_k=0), "top_k must be None or an integer >= 1"),
    (dict(top_k=2.5), "top_k must be None or an integer >= 1"),
    (dict(top_k=True), "top_k must be None or an integer >= 1"),
    (dict(top_p=0.0), r"top_p must be None or a number in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be None or a number in \(0, 1\]"),
    (dict(top_p=math.nan), r"top_p must be None or a number in \(0, 1\]"),
    (dict(min_p=-0.1), r"min_p must be None or a number in \[0, 1\]"),
    (dict(min_p=2), r"min_p must be None or a number in \[0, 1\]"),
    (dict(repetition_penalty=0.0), "repetition_penalty must be a finite number > 0"),
    (dict(presence_penalty=math.inf), "presence_penalty must be a finite number"),
    (dict(frequency_penalty=None), "frequency_penalty must be a finite number"),
])
def test_bad_arguments_raise_clear_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        check_sampling_args(**kw)
    filter_kw = {k: v for k, v in kw.items() if k in ("temperature", "top_k", "top_p", "min_p")}
    if filter_kw:
        with pytest.raises(ValueError, match=message):
            filter_logits(dev([1.0, 2.0]), **filter_kw)
    else:
        with pytest.raises(ValueError, match=message):
            apply_penalties(dev([1.0, 2.0]), [0], **kw)


def test_bad_shapes_and_ids_raise_clear_errors():
    with pytest.raises(ValueError, match=r"logits must have shape \(V,\) or \(B, V\)"):
        filter_logits(dev(np.zeros((2, 3, 4))))
    with pytest.raises(ValueError, match=r"token ids in \[0, vocab_size=3\), got 7 at position \(0, 1\)"):
        apply_penalties(dev([1.0, 2.0, 3.0]), [0, 7], repetition_penalty=1.2)
    with pytest.raises(ValueError, match=r"ids must be integer token ids of shape \(T,\) or \(B=2, T\)"):
        apply_penalties(dev(np.zeros((2, 3))), np.zeros((3, 1), np.int64), presence_penalty=1.0)
    with pytest.raises(ValueError, match="seed must be None, an integer"):
        make_rng("abc")


def test_processors_are_composable():
    procs = S.processors(temperature=0.5, top_k=3, top_p=0.9, min_p=0.1)
    assert [type(p).__name__ for p in procs] == ["Temperature", "TopK", "TopP", "MinP"]
    assert S.processors() == [] and [type(p).__name__ for p in S.processors(temperature=0, top_k=3)] == ["Temperature"]
    z = np.random.default_rng(0).normal(size=(2, 8))
    ids = np.array([[1, 1, 2], [0, 7, 7]])
    mine = S.apply([S.Penalties(1.3, 0.2, 0.1)] + procs, dev(z), ids)
    want = filter_logits(apply_penalties(dev(z), ids, 1.3, 0.2, 0.1), 0.5, 3, 0.9, 0.1)
    np.testing.assert_array_equal(host(mine), host(want))


# ---------------------------------------------------------------------------- Hugging Face, when installed


def test_matches_hugging_face_warpers(torch):
    tf = pytest.importorskip("transformers", reason="transformers is not installed (optional oracle)")
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    del tf
    z = np.random.default_rng(0).normal(size=(4, 50)) * 3  # continuous values: no ties, which HF breaks arbitrarily
    ids = np.random.default_rng(1).integers(0, 50, size=(4, 12))
    zt, it = torch.tensor(z), torch.tensor(ids)
    for t, k, p, m in [(0.7, 20, 0.9, 0.05), (1.3, 50, 0.5, 0.0), (1.0, 5, 0.99, 0.2)]:
        hf = RepetitionPenaltyLogitsProcessor(1.3)(it, zt.clone())
        for warper in (TemperatureLogitsWarper(t), TopKLogitsWarper(k), TopPLogitsWarper(p), MinPLogitsWarper(m)):
            hf = warper(it, hf)
        got = host(filter_logits(apply_penalties(dev(z), ids, 1.3), t, k, p, m))
        np.testing.assert_array_equal(np.isinf(got), torch.isinf(hf).numpy())
        np.testing.assert_allclose(got[np.isfinite(got)], hf.numpy()[np.isfinite(got)], rtol=1e-12)
