"""Positional encodings against their definitions: sinusoidal's closed form, RoPE as complex rotation
(and its relative-position property, its two layouts), ALiBi's slopes and bias from the paper."""

import math

import numpy as np
import pytest
from gradcheck import gradcheck
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.positional import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    apply_rope_interleaved,
    half_to_interleaved,
    interleaved_to_half,
    rope_cos_sin,
    sinusoidal_table,
)


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


# ---------------------------------------------------------------------------- sinusoidal


def test_sinusoidal_table_is_the_closed_form():
    T, d = 50, 12
    pe = sinusoidal_table(T, d)
    for pos in range(T):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)
    np.testing.assert_allclose(sinusoidal_table(4, 4)[1], [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
                               atol=1e-7)  # the docstring's example
    np.testing.assert_array_equal(sinusoidal_table([3, 7], d), pe[[3, 7]])
    with pytest.raises(ValueError, match="d_model must be even"):
        sinusoidal_table(4, 5)


def test_the_sinusoidal_table_is_a_buffer_that_is_never_saved():
    """Derived from the config: it moves with the model (.to) but is not in the state dict (persistent=False)."""
    model = GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8, pos_encoding="sinusoidal"))
    assert "pos_table" in dict(model.named_buffers()) and "pos_table" not in model.state_dict()
    np.testing.assert_allclose(tinyllm.to_numpy(model.pos_table.data), sinusoidal_table(8, 8))
    model.to("strict")
    assert model.pos_table.device == "strict"


def test_sinusoidal_shift_is_a_fixed_linear_map():
    # PE[p + k] = M_k PE[p] for every p, with M_k a block rotation: the paper's motivation
    pe = sinusoidal_table(40, 8).astype(np.float64)
    k = 5
    M, *_ = np.linalg.lstsq(pe[:-k], pe[k:], rcond=None)
    np.testing.assert_allclose(pe[:-k] @ M, pe[k:], atol=1e-5)


# ---------------------------------------------------------------------------- RoPE


def rope_complex(x, positions, theta=10000.0, layout="half"):
    """The definition: plane i as a complex number z_i, multiplied by e^(i·m·θ_i)."""
    hs = x.shape[-1]
    h = hs // 2
    if layout == "half":
        z = x[..., :h] + 1j * x[..., h:]
    else:
        z = x[..., 0::2] + 1j * x[..., 1::2]
    th = theta ** (-np.arange(h) * 2.0 / hs)
    z = z * np.exp(1j * np.asarray(positions)[:, None] * th[None, :])
    out = np.empty(x.shape)
    if layout == "half":
        out[..., :h], out[..., h:] = z.real, z.imag
    else:
        out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


@settings(max_examples=30)
@given(st.integers(1, 6), st.sampled_from([2, 4, 8, 16]), st.integers(0, 500), st.sampled_from([10000.0, 500.0]),
       st.integers(0, 2**31 - 1))
def test_rope_is_the_complex_rotation(T, hs, start, theta, seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, T, hs)).astype(np.float32)
    positions = np.arange(start, start + T)
    cos, sin = rope_cos_sin(positions, hs, theta)
    ours = host(apply_rope(tinyllm.tensor(x), cos, sin))
    np.testing.assert_allclose(ours, rope_complex(x.astype(np.float64), positions, theta), atol=1e-4)
    np.testing.assert_allclose(apply_rope_interleaved(x, positions, theta),
                               rope_complex(x.astype(np.float64), positions, theta, "interleaved"), atol=1e-4)


@settings(max_examples=30)
@given(st.integers(0, 300), st.integers(0, 300), st.integers(-100, 100), st.integers(0, 2**31 - 1))
def test_rope_scores_depend_only_on_the_distance(m, n, shift, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(1, 16)), rng.normal(size=(1, 16))
    m2, n2 = m + shift, n + shift
    if min(m2, n2) < 0:
        return

    def score(a, b):
        ca, sa = rope_cos_sin([a], 16)
        cb, sb = rope_cos_sin([b], 16)
        qa = host(apply_rope(tinyllm.tensor(q), ca, sa)).astype(np.float64)
        kb = host(apply_rope(tinyllm.tensor(k), cb, sb)).astype(np.float64)
        return float((qa @ kb.T)[0, 0])

    assert score(m, n) == pytest.approx(score(m2, n2), abs=2e-4)
    # and it is q · R((n - m)θ) k: the rotation of the key alone by the distance
    rel = rope_complex(k, [n - m]) if n >= m else None
    if rel is not None:
        assert score(m, n) == pytest.approx(float((q @ rel.T)[0, 0]), abs=2e-4)


def test_rope_backward_matches_finite_differences():
    cos, sin = rope_cos_sin(np.arange(3, 8), 6, 100.0)
    x = tinyllm.tensor(np.random.default_rng(0).normal(size=(2, 5, 6)), requires_grad=True)
    gradcheck(lambda t: apply_rope(t, cos, sin), [x])


def test_rope_layouts_convert_into_each_other():
    rng = np.random.default_rng(0)
    n_heads, hs, C, T = 3, 8, 5, 6
    W = rng.normal(size=(n_heads * hs, C))  # a q (or k) projection, "half" layout rows
    x = rng.normal(size=(T, C))
    q_half = (x @ W.T).reshape(T, n_heads, hs).transpose(1, 0, 2)  # (nh, T, hs)
    W_int = half_to_interleaved(W, n_heads)
    q_int = (x @ W_int.T).reshape(T, n_heads, hs).transpose(1, 0, 2)
    cos, sin = rope_cos_sin(T, hs)
    rot_half = host(apply_rope(tinyllm.tensor(q_half), cos, sin)).astype(np.float64)
    rot_int = apply_rope_interleaved(q_int, np.arange(T))
    perm = np.stack([np.arange(hs // 2), np.arange(hs // 2) + hs // 2], 1).reshape(-1)  # [0, h, 1, h+1, ...]
    np.testing.assert_allclose(rot_int, rot_half[..., perm], atol=1e-5)  # the same numbers, reordered
    np.testing.assert_allclose(rot_int @ rot_int.swapaxes(1, 2), rot_half @ rot_half.swapaxes(1, 2), atol=1e-4)
    np.testing.assert_array_equal(interleaved_to_half(W_int, n_heads), W)
    # Hugging Face's convert_llama_weights_to_hf.py permute (Meta's interleaved -> HF's half layout)
    hf = W_int.reshape(n_heads, hs // 2, 2, C).transpose(0, 2, 1, 3).reshape(n_heads * hs, C)
    np.testing.assert_array_equal(hf, W)
    b = rng.normal(size=n_heads * hs)  # a bias converts the same way
    np.testing.assert_array_equal(interleaved_to_half(half_to_interleaved(b, n_heads), n_heads), b)
    with pytest.raises(ValueError, match="even size"):
        half_to_interleaved(np.zeros((9, 2)), 3)


# ---------------------------------------------------------------------------- ALiBi


def test_alibi_slopes_follow_the_paper():
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -k for k in range(1, 9)])
    for n in (1, 2, 4, 16, 32):
        np.testing.assert_allclose(alibi_slopes(n), [2.0 ** (-8 * h / n) for h in range(1, n + 1)])
    # not a power of two: the 4 slopes of n=4, then every other slope of n=8 (the paper's get_slopes)
    np.testing.assert_allclose(alibi_slopes(6), [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3])
    np.testing.assert_allclose(alibi_slopes(12),
                               [2.0 ** -k for k in range(1, 9)] + [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5])
    for n in range(1, 40):
        s = alibi_slopes(n)
        assert len(s) == n and len(set(s)) == n and (s > 0).all() and (s < 1).all()
    with pytest.raises(ValueError, match="positive integer"):
        alibi_slopes(0)


def test_alibi_bias_is_minus_slope_times_distance():
    n_head, T = 3, 5
    bias = alibi_bias(n_head, np.arange(T), np.arange(T))
    m = alibi_slopes(n_head)
    for h in range(n_head):
        for i in range(T):
            for j in range(i + 1):
                assert bias[h, i, j] == pytest.approx(-m[h] * (i - j), rel=1e-6)
    np.testing.assert_allclose(alibi_bias(2, [2], [0, 1, 2])[0, 0], [-2 / 16, -1 / 16, 0])  # the docstring's example
    # a query at a later position over cached keys: only the distance matters
    np.testing.assert_allclose(alibi_bias(n_head, [9], np.arange(10)), alibi_bias(n_head, [4], np.arange(-5, 5)),
                               atol=1e-6)


# ---------------------------------------------------------------------------- in the model


@pytest.mark.parametrize("pos", ["sinusoidal", "rope", "alibi", "none"])
def test_position_free_encodings_have_no_position_table_and_run_past_their_training_length(pos):
    cfg = GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8, pos_encoding=pos)
    model = GPT(cfg)
    assert "transformer.wpe.weight" not in model.state_dict()
    import dataclasses
    longer = GPT(dataclasses.replace(cfg, context_length=32))
    longer.load_state_dict(model.state_dict())  # the same weights fit any length
    x = np.random.default_rng(0).integers(0, 11, (1, 32))
    logits = host(longer(x)[0])
    assert np.isfinite(logits).all()
    np.testing.assert_allclose(logits[:, :8], host(model(x[:, :8])[0]), atol=1e-5)  # causal: a prefix is a prefix


def test_the_model_depends_on_order_only_through_its_encoding():
    # the last position's logits of "none" ignore the order of the earlier tokens (a set, seen through the
    # causal mask from the last position); every real encoding makes them depend on it
    x = np.array([[1, 2, 3, 4, 5, 6]])
    y = np.array([[3, 1, 5, 2, 4, 6]])
    for pos in ("learned", "sinusoidal", "rope", "alibi", "none"):
        tinyllm.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8, pos_encoding=pos))
        for p in model.parameters():  # bigger weights than GPT-2's init, so the differences are not tiny
            p.data[...] = tinyllm.tensor(np.random.default_rng(1).normal(0, 0.5, p.shape).astype(np.float32)).data
        a, b = host(model(x)[0])[0, -1], host(model(y)[0])[0, -1]
        if pos == "none":
            np.testing.assert_allclose(a, b, atol=1e-5)
        else:
            assert np.abs(a - b).max() > 1e-3, pos


def test_config_checks_the_encoding_fields():
    with pytest.raises(ValueError, match="head_dim = d_model // n_head must be even"):
        GPTConfig(vocab_size=5, context_length=4, n_layer=1, n_head=2, d_model=6, pos_encoding="rope")
    with pytest.raises(ValueError, match="rope_theta must be a finite number > 1"):
        GPTConfig(vocab_size=5, context_length=4, n_layer=1, n_head=2, d_model=8, rope_theta=1.0)
    with pytest.raises(ValueError, match="d_model must be even"):
        GPTConfig(vocab_size=5, context_length=4, n_layer=1, n_head=1, d_model=7, pos_encoding="sinusoidal")
