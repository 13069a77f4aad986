"""The KV cache changes nothing but the speed: cached logits equal a full recompute, for every positional
encoding, grouped-query attention, batches, chunked prefill and a prompt that fills the context; greedy
generation gives the same tokens with and without it. The same for the raw-array Decoder
(tinyllm/inference/decode.py), step by step and in generate. Plus the cache's own bookkeeping and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.functional import kernels
from tinyllm.inference.kv_cache import KVCache
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.config import ACTIVATIONS, NORM_POSITIONS, NORMS, POS_ENCODINGS


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


@st.composite
def models(draw, moe: bool = True):
    """A small random GPT with weights large enough that attention is far from uniform; with moe, a third of them
    hold mixture-of-experts blocks (3 experts, top-1 or top-2, a capacity that eval mode ignores)."""
    n_expert = draw(st.sampled_from([0, 0, 3])) if moe else 0
    n_kv = draw(st.sampled_from([1, 2]))
    n_head = n_kv * draw(st.sampled_from([1, 2]))
    cfg = GPTConfig(vocab_size=draw(st.integers(3, 17)), context_length=draw(st.integers(4, 20)),
                    n_layer=draw(st.integers(1, 2)), n_head=n_head, n_kv_head=n_kv,
                    d_model=n_head * draw(st.sampled_from([2, 4])), pos_encoding=draw(st.sampled_from(POS_ENCODINGS)),
                    norm=draw(st.sampled_from(NORMS)), bias=draw(st.booleans()),
                    activation=draw(st.sampled_from(ACTIVATIONS)), norm_position=draw(st.sampled_from(NORM_POSITIONS)))
    if n_expert:
        cfg = GPTConfig.from_dict({**cfg.to_dict(), "n_expert": n_expert, "expert_top_k": draw(st.integers(1, 2)),
                                   "expert_capacity_factor": 0.5})
    model = GPT(cfg).eval()
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    for p in model.parameters():
        p.data[...] = tinyllm.tensor(rng.normal(0, 0.4, p.shape).astype(np.float32)).data
    return model


@settings(max_examples=40)
@given(models(), st.data())
def test_cached_logits_equal_a_full_recompute(model, data):
    cfg = model.config
    B = data.draw(st.integers(1, 3), label="B")
    T = data.draw(st.integers(1, cfg.context_length), label="T")  # T = context_length: the cache ends full
    x = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, cfg.vocab_size, (B, T))
    cuts = sorted(data.draw(st.sets(st.integers(1, T - 1), max_size=4), label="cuts")) if T > 1 else []
    full = host(model(x)[0])  # (B, T, V)
    cache = model.make_cache(batch_size=B)
    pieces = []
    for a, b in zip([0] + cuts, cuts + [T]):  # chunked prefill; chunks of one token are decode steps
        pieces.append(host(model(x[:, a:b], cache=cache)[0]))
        assert cache.length == b
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5, rtol=0)


@settings(max_examples=40)
@given(models(moe=False), st.data())  # the Decoder is made for plain models only
def test_decoder_steps_equal_a_full_recompute(model, data):
    cfg = model.config
    B = data.draw(st.integers(1, 3), label="B")
    T = data.draw(st.integers(1, cfg.context_length), label="T")  # T = context_length: the cache ends full
    P = data.draw(st.integers(0, T - 1), label="prefill")  # 0: the very first position is a step too
    x = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, cfg.vocab_size, (B, T))
    full = host(model(x)[0])  # (B, T, V)
    dec = model.make_decoder(batch_size=B)
    if P:
        np.testing.assert_allclose(dec.prefill(x[:, :P]), full[:, P - 1], atol=1e-5, rtol=0)
    for t in range(P, T):  # one token per row, on raw arrays
        np.testing.assert_allclose(dec.step(x[:, t]), full[:, t], atol=1e-5, rtol=0)
        assert dec.cache.length == t + 1


def same_greedy_tokens(model, got, want):
    """got == want, but for an exact tie (to float rounding) broken the other way."""
    if not (got == want).all():
        b, t = np.argwhere(got != want)[0]
        window = got[b:b + 1, max(0, t - model.config.context_length):t]
        top2 = np.sort(host(model(window)[0])[0, -1])[-2:]
        assert top2[1] - top2[0] < 1e-5, (got, want)


@settings(max_examples=25)
@given(models(), st.integers(1, 3), st.integers(1, 30), st.integers(0, 99))
def test_greedy_generation_is_the_same_with_and_without_the_cache(model, B, n_new, seed):
    cfg = model.config
    T0 = 1 + seed % cfg.context_length
    prompt = np.random.default_rng(seed).integers(0, cfg.vocab_size, (B, T0))
    plain = model.generate(prompt, n_new, temperature=0.0, use_cache=False)
    for fast_decode in (True, False):  # the Decoder's raw steps, and the modules'
        # may run past the context: the window slides
        same_greedy_tokens(model, model.generate(prompt, n_new, temperature=0.0, fast_decode=fast_decode), plain)


def test_sampling_with_a_seed_is_the_same_with_and_without_the_cache():
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_length=16, n_layer=2, n_head=2, d_model=16, pos_encoding="rope"))
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    a = model.generate(prompt, 25, temperature=0.9, top_k=10, top_p=0.9, seed=3)
    b = model.generate(prompt, 25, temperature=0.9, top_k=10, top_p=0.9, seed=3, use_cache=False)
    c = model.generate(prompt, 25, temperature=0.9, top_k=10, top_p=0.9, seed=3, fast_decode=False)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------- the Decoder's own cases


def random_model(seed=0, **kw):
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**{**dict(vocab_size=40, context_length=24, n_layer=2, n_head=4, n_kv_head=2,
                                    d_model=16, pos_encoding="rope"), **kw})).eval()
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = tinyllm.tensor(rng.normal(0, 0.4, p.shape).astype(np.float32)).data
    return model


def decoded(model, x, P):
    """Host logits (B, T - P + 1, V): prefill x[:, :P], then one Decoder step per remaining token."""
    dec = model.make_decoder(batch_size=x.shape[0])
    return np.stack([dec.prefill(x[:, :P])] + [dec.step(x[:, t]) for t in range(P, x.shape[1])], axis=1)


@pytest.mark.parametrize("pos", POS_ENCODINGS)
def test_decoder_with_many_rows_and_in_float64(pos):
    # 9 rows: past Decoder's few-rows kernel, the products go to BLAS; float64: the reference code throughout
    model = random_model(pos_encoding=pos, activation="gelu_tanh")
    x = np.random.default_rng(1).integers(0, 40, (9, 24))
    np.testing.assert_allclose(decoded(model, x, 5), host(model(x)[0])[:, 4:], atol=1e-5, rtol=0)
    model.double()
    np.testing.assert_allclose(decoded(model, x[:2], 3), host(model(x[:2])[0])[:, 2:], atol=1e-10, rtol=0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_decoder_kernels_equal_its_reference_code(activation):
    # the host kernels (few-rows linear, norms, activations, softmax) against the array-module code beside them
    for norm in ("layernorm", "rmsnorm"):
        model = random_model(norm=norm, activation=activation, bias=norm == "layernorm")
        x = np.random.default_rng(2).integers(0, 40, (2, 20))
        fast = decoded(model, x, 4)
        with kernels.disabled():
            np.testing.assert_allclose(decoded(model, x, 4), fast, atol=1e-5, rtol=0)


def test_the_decoder_is_made_only_for_a_plain_gpt():
    from tinyllm.nn.attention import record_attention
    from tinyllm.nn.attention_variants import use_variant
    from tinyllm.nn.decoding import why_not_decodable

    model = random_model()
    assert model.make_decoder() is not None and why_not_decodable(model) == ""
    record_attention(model)  # the modules must run to keep the weights
    assert model.make_decoder() is None and "records its attention" in why_not_decodable(model)
    prompt = np.array([[1, 2, 3]])
    out = model.generate(prompt, 4, temperature=0.0)  # through the modules: every step recorded
    assert model.transformer.h[0].attn.last_weights.shape == (1, 4, 1, 6)
    record_attention(model, False)
    np.testing.assert_array_equal(model.generate(prompt, 4, temperature=0.0), out)
    variant = use_variant(random_model(n_kv_head=None, pos_encoding="learned"), "zero_q")
    assert why_not_decodable(variant).startswith("transformer.h.0.attn is a VariantAttention")
    dropout = random_model(dropout=0.1).train()
    assert "training mode with dropout" in why_not_decodable(dropout) and dropout.make_decoder() is None
    assert dropout.generate(prompt, 3, seed=0).shape == (1, 6) and dropout.training  # decodes in eval, mode restored

    class Mine(GPT):
        pass

    assert Mine(model.config).make_decoder() is None  # a subclass may compute anything: its modules decode


def test_decoder_step_errors_say_what_to_do():
    model = random_model()
    dec = model.make_decoder(batch_size=2, max_len=3)
    with pytest.raises(ValueError, match=r"one token per row, shape \(2,\), got \(2, 1\)"):
        dec.step(np.array([[1], [2]]))
    dec.prefill(np.array([[1, 2], [3, 4]]))
    dec.step(np.array([5, 6]))
    with pytest.raises(ValueError, match=r"1 new position\(s\) after the 3 cached ones exceed max_len=3"):
        dec.step(np.array([7, 8]))
    assert "Decoder(2 layers, KVCache(length=3/3" in repr(dec)


def test_the_broken_cache_is_caught():
    # the property test can fail: forgetting to offset positions (every chunk restarts at 0) breaks it
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, context_length=8, n_layer=1, n_head=2, d_model=8, pos_encoding="rope"))
    x = np.arange(8)[None] % 10
    full = host(model(x)[0])
    cache = model.make_cache()
    host(model(x[:, :4], cache=cache)[0])
    cache.length = 0  # the next chunk now sits at positions 0.. and sees only itself
    wrong = host(model(x[:, 4:], cache=cache)[0])
    assert np.abs(wrong - full[:, 4:]).max() > 1e-3


# ---------------------------------------------------------------------------- bookkeeping


def small_model(**kw):
    tinyllm.manual_seed(0)
    return GPT(GPTConfig(**{**dict(vocab_size=10, context_length=8, n_layer=2, n_head=4, d_model=16), **kw}))


def test_cache_shape_bytes_and_formula():
    model = small_model(n_kv_head=2)
    cache = model.make_cache(batch_size=3, max_len=6)
    assert cache.keys.shape == cache.values.shape == (2, 3, 2, 6, 4)
    assert cache.nbytes == KVCache.bytes_needed(n_layer=2, n_kv_head=2, head_dim=4, T=6, batch_size=3) \
        == 2 * 2 * 2 * 4 * 6 * 3 * 4
    assert KVCache.bytes_needed(12, 12, 64, 1024) == 75_497_472  # GPT-2 small, the docstring's 75.5 MB
    assert "length=0/6" in repr(cache)


def test_overflow_and_wrong_inputs_are_clear_errors():
    model = small_model()
    cache = model.make_cache(batch_size=1, max_len=5)
    model(np.zeros((1, 4), np.int64), cache=cache)
    with pytest.raises(ValueError, match=r"2 new position\(s\) after the 4 cached ones exceed max_len=5"):
        model(np.zeros((1, 2), np.int64), cache=cache)
    assert cache.length == 4  # a refused call leaves the cache as it was
    with pytest.raises(ValueError, match="batch of 2 rows does not match the cache's batch_size=1"):
        model(np.zeros((2, 1), np.int64), cache=cache)
    with pytest.raises(ValueError, match=r"max_len must be an integer in \[1, context_length=8\]"):
        model.make_cache(max_len=9)
    other = small_model(n_layer=1).make_cache()
    with pytest.raises(ValueError, match="was not made for this model"):
        model(np.zeros((1, 1), np.int64), cache=other)
    with pytest.raises(ValueError, match="positive integer"):
        KVCache(1, 0, 1, 4, 2)


def test_a_batch_that_fails_midway_leaves_the_length_alone():
    model = small_model()
    cache = model.make_cache(batch_size=1)
    with pytest.raises(ValueError, match="token ids in"):
        model(np.array([[1, 99]]), cache=cache)
    assert cache.length == 0


def test_crop_reset_and_set_prefix_reuse_the_cache():
    model = small_model(pos_encoding="alibi")
    x = np.array([[1, 2, 3, 4, 5, 6]])
    full = host(model(x)[0])
    cache = model.make_cache()
    model(x[:, :4], cache=cache)
    cache.crop(2)  # forget positions 2, 3 and read them again
    np.testing.assert_allclose(host(model(x[:, 2:], cache=cache)[0]), full[:, 2:], atol=1e-5)
    n = 3
    keys, values = cache.keys[:, :, :, :n].copy(), cache.values[:, :, :, :n].copy()
    fresh = model.make_cache()
    fresh.set_prefix(keys, values)  # a prefix computed elsewhere (the prefix cache does this)
    assert fresh.length == n
    np.testing.assert_allclose(host(model(x[:, n:], cache=fresh)[0]), full[:, n:], atol=1e-5)
    cache.reset()
    assert cache.length == 0
    with pytest.raises(ValueError, match=r"crop: n must be in \[0, length=0\]"):
        cache.crop(1)
    with pytest.raises(ValueError, match="set_prefix: keys and values must have shape"):
        fresh.set_prefix(keys[:1], values[:1])


def test_cached_forward_builds_no_graph_and_takes_targets():
    model = small_model().train()
    cache = model.make_cache()
    logits, loss = model(np.array([[1, 2, 3]]), np.array([[2, 3, 4]]), cache=cache)
    assert not logits.requires_grad and loss is not None and np.isfinite(loss.item())


def test_the_variant_attention_of_lab_4_refuses_a_cache():
    from tinyllm.nn.attention_variants import use_variant

    model = use_variant(small_model(), "zero_q")
    with pytest.raises(ValueError, match="does not take a KV cache"):
        model.generate(np.array([[1, 2]]), 2)
    assert model.generate(np.array([[1, 2]]), 2, use_cache=False, seed=0).shape == (1, 4)


def test_a_bidirectional_model_refuses_a_cache_and_generates_without_one():
    model = small_model(pos_encoding="none")
    for m in model.modules():
        if hasattr(m, "causal"):
            m.causal = False  # every token's K/V now depends on later tokens: nothing can be kept
    with pytest.raises(ValueError, match="a KV cache needs causal attention"):
        model(np.array([[1, 2]]), cache=model.make_cache())
    prompt = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(model.generate(prompt, 6, temperature=0.0),
                                  model.generate(prompt, 6, temperature=0.0, use_cache=False))


def test_a_full_context_says_so_rather_than_asking_for_a_longer_cache():
    model = small_model()  # context_length 8
    cache = model.make_cache()
    model(np.zeros((1, 8), np.int64), cache=cache)
    with pytest.raises(ValueError, match=r"positions 8..8 go past context_length=8"):
        model(np.zeros((1, 1), np.int64), cache=cache)


def test_generate_sizes_its_cache_to_what_it_will_hold():
    model = small_model()
    sizes, make = [], model.make_cache
    model.make_cache = lambda **kw: sizes.append(kw["max_len"]) or make(**kw)
    model.generate(np.array([[1, 2]]), 3, seed=0)   # 5 positions at most
    model.generate(np.array([[1, 2]]), 30, seed=0)  # slides past the context: the whole window
    assert sizes == [5, 8]
