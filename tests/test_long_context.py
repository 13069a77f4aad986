"""Long context in the model: GPTConfig.attention picks a kernel, GPTConfig.window a sliding window.

Properties over random models, for every kernel x window x positional encoding:

  * the three kernels give one model the same logits and gradients;
  * a window is causal (the checks of tests/test_causality.py) and reaches exactly as far as it
    should: tokens more than n_layer·(window - 1) positions back change nothing;
  * the rolling cache changes nothing but the memory: chunked prefill and decode steps equal a full
    forward, whatever the chunks (longer than the cache's room too);
  * past context_length (rope, alibi, none) generation goes on in the cache without re-reading the
    prompt, equal to a full forward over the whole text, and to uncached generation when the window's
    reach fits in the context; the cache's bytes stay fixed;
  * the raw-array Decoder serves every kernel and window, past the context too.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_causality import (
    check_future_does_not_change_the_past,
    check_no_gradient_from_the_future,
    check_prefix_run_agrees,
    make_model,
    settings_for,
)

import tinyllm
from tinyllm.inference.kv_cache import KVCache
from tinyllm.inference.rolling_cache import RollingKVCache
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.config import ATTENTIONS, POS_ENCODINGS

UNBOUNDED = ("rope", "alibi", "none")  # positions without a table: a windowed model reads any length


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def random_model(seed=0, **kw):
    tinyllm.manual_seed(seed)
    cfg = GPTConfig(**{**dict(vocab_size=23, context_length=16, n_layer=2, n_head=4, n_kv_head=2, d_model=16,
                              pos_encoding="rope"), **kw})
    model = GPT(cfg).eval()
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = tinyllm.tensor(rng.normal(0, 0.4, p.shape).astype(np.float32)).data
    return model


def with_config(model, **changes):
    """The same weights in a model whose config has `changes` (kernel, window, a longer context)."""
    other = GPT(dataclasses.replace(model.config, **changes)).eval()
    other.load_state_dict(model.state_dict())
    return other


@st.composite
def windowed(draw):
    """(model, x (B, T)): a random small GPT with a random kernel, window and positional encoding."""
    n_kv = draw(st.sampled_from([1, 2]))
    n_head = n_kv * draw(st.sampled_from([1, 2]))
    ctx = draw(st.integers(4, 20))
    cfg = dict(vocab_size=draw(st.integers(3, 17)), context_length=ctx, n_layer=draw(st.integers(1, 2)),
               n_head=n_head, n_kv_head=n_kv, d_model=n_head * draw(st.sampled_from([2, 4])),
               pos_encoding=draw(st.sampled_from(POS_ENCODINGS)), attention=draw(st.sampled_from(ATTENTIONS)),
               window=draw(st.none() | st.integers(1, ctx)), bias=draw(st.booleans()))
    model = random_model(draw(st.integers(0, 2**16)), **cfg)
    B, T = draw(st.integers(1, 2)), draw(st.integers(1, ctx))
    x = np.random.default_rng(draw(st.integers(0, 99))).integers(0, cfg["vocab_size"], (B, T))
    return model, x


@settings(max_examples=30)
@given(windowed())
def test_every_kernel_gives_the_same_logits_and_gradients(case):
    model, x = case
    y = np.roll(x, -1, axis=1)
    got = {}
    for kernel in ATTENTIONS:
        m = with_config(model, attention=kernel).train()  # dropout is 0: training mode changes nothing
        logits, loss = m(x, y)
        loss.backward()
        got[kernel] = [host(logits)] + [host(p.grad) for p in m.parameters()]
    for kernel in ATTENTIONS[1:]:
        for a, b in zip(got[kernel], got["full"]):
            np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
@settings(max_examples=8)
@given(data=st.data())
def test_a_window_is_causal(pos_encoding, data):
    cfg, idx, t, idx2, seed = data.draw(settings_for("pos_encoding", pos_encoding))
    cfg = dataclasses.replace(cfg, window=data.draw(st.integers(1, cfg.context_length)),
                              attention=data.draw(st.sampled_from(ATTENTIONS)))
    model = make_model(cfg, seed)
    check_future_does_not_change_the_past(model, idx, t, idx2)
    check_prefix_run_agrees(make_model(cfg, seed).double(), idx, t)
    check_no_gradient_from_the_future(model, idx, t)


@settings(max_examples=20)
@given(windowed(), st.data())
def test_a_window_reaches_n_layer_times_window_minus_one_back(case, data):
    model, _ = case
    c = model.config
    W = data.draw(st.integers(1, 4), label="window")
    model = with_config(model, window=W)
    reach = c.n_layer * (W - 1)  # the last position sees tokens reach positions back, through the layers
    T = c.context_length
    x = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, c.vocab_size, (1, T))
    far = x.copy()
    far[:, :max(0, T - 1 - reach)] = (far[:, :max(0, T - 1 - reach)] + 1) % c.vocab_size  # out of reach
    np.testing.assert_allclose(host(model(far)[0])[:, -1], host(model(x)[0])[:, -1], atol=1e-6, rtol=0)


@settings(max_examples=40)
@given(windowed(), st.data())
def test_rolling_cache_logits_equal_a_full_recompute(case, data):
    model, x = case
    T = x.shape[1]
    cuts = sorted(data.draw(st.sets(st.integers(1, T - 1), max_size=4), label="cuts")) if T > 1 else []
    full = host(model(x)[0])  # (B, T, V)
    cache = model.make_cache(batch_size=x.shape[0])
    assert isinstance(cache, RollingKVCache) == (model.config.window is not None)
    pieces = [host(model(x[:, a:b], cache=cache)[0]) for a, b in zip([0] + cuts, cuts + [T])]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5, rtol=0)
    assert cache.length == T


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("pos_encoding", UNBOUNDED)
def test_generation_goes_past_the_context_without_rereading_the_prompt(pos_encoding, attention):
    model = random_model(pos_encoding=pos_encoding, attention=attention, window=3, context_length=8)
    read = []  # the tokens each call reads through the modules
    hidden = model.hidden_states
    model.hidden_states = lambda idx, *a, **kw: read.append(np.shape(idx)[1]) or hidden(idx, *a, **kw)
    prompt = np.random.default_rng(0).integers(0, 23, (2, 6))
    out = model.generate(prompt, 30, temperature=0.0, fast_decode=False)  # 36 tokens: past the context of 8
    assert read == [6] + [1] * 29  # the prompt once, then one token per step
    read.clear()
    np.testing.assert_array_equal(model.generate(prompt, 30, temperature=0.0), out)  # the Decoder's steps
    assert read == [6]  # the prompt through the modules, every step on raw arrays
    # each step's choice is the argmax of a full forward over the whole text (a model with room for it)
    longer = with_config(model, context_length=64)
    logits = host(longer(out[:, :-1])[0])[:, 5:]  # positions 5..34 predicted tokens 6..35
    top2 = np.sort(logits, axis=-1)[..., -2:]
    chosen = np.take_along_axis(logits, out[:, 6:, None], -1)[..., 0]
    assert np.all((chosen == top2[..., 1]) | (top2[..., 1] - top2[..., 0] < 1e-5))
    # the reach, 2 layers x (3 - 1) + 1 = 5 tokens, fits in the context: uncached generation agrees
    np.testing.assert_array_equal(model.generate(prompt, 30, temperature=0.0, use_cache=False), out)


def test_the_rolling_cache_holds_a_fixed_number_of_bytes():
    model = random_model(window=4, context_length=8)
    cache = model.make_cache(batch_size=2)
    assert cache.nbytes == KVCache.bytes_needed(n_layer=2, n_kv_head=2, head_dim=4, T=2 * 4, batch_size=2)
    x = np.random.default_rng(0).integers(0, 23, (2, 50))
    full = host(with_config(model, context_length=64)(x)[0])
    model(x[:, :3], cache=cache)
    for t in range(3, 50):  # decode steps, far past the context and the room
        np.testing.assert_allclose(host(model(x[:, t:t + 1], cache=cache)[0])[:, 0], full[:, t], atol=1e-5)
    assert cache.length == 50 and cache.nbytes == KVCache.bytes_needed(2, 2, 4, 8, batch_size=2)
    assert "RollingKVCache(length=50, window=4, capacity=8" in repr(cache)
    assert model.make_cache(max_len=5).capacity == 5  # fewer positions than 2·window: no more room made


def test_rolling_cache_bookkeeping():
    cache = RollingKVCache(n_layer=1, batch_size=1, n_kv_head=1, window=4, head_dim=1, capacity=8)
    def pos(a, b):  # (1, 1, b - a, 1) keys whose values are their positions, on the default device
        return tinyllm.tensor(np.arange(a, b, dtype=np.float32).reshape(1, 1, -1, 1)).data

    seen = []
    for a, b in ((0, 3), (3, 9), (9, 10), (10, 11), (11, 30), (30, 31)):
        k, _ = cache.write(0, pos(a, b), pos(a, b))
        cache.advance(b - a)
        seen.append(host(k)[0, 0, :, 0].tolist())
    assert seen[0] == [0, 1, 2]                    # room: written after what is there
    assert seen[1] == [0, 1, 2, 3, 4, 5, 6, 7, 8]  # 3 kept + 6 new > 8 slots: handed back fresh
    assert seen[2] == [6, 7, 8, 9]                 # the last 3 before, and the new one
    assert seen[3] == [7, 8, 9, 10]
    assert seen[4] == list(range(8, 30))
    assert seen[5] == [27, 28, 29, 30] and cache.start == [27]
    for t in range(31, 36):  # decode steps until the slots run out: the kept 3 move to the front
        k, _ = cache.write(0, pos(t, t + 1), pos(t, t + 1))
        cache.advance(1)
    assert host(k)[0, 0, :, 0].tolist() == [32, 33, 34, 35] and cache.start == [32]
    with pytest.raises(ValueError, match="batch of 2 rows does not match the cache's batch_size=1"):
        cache.write(0, pos(0, 2).reshape(2, 1, 1, 1), pos(0, 2).reshape(2, 1, 1, 1))
    with pytest.raises(ValueError, match="capacity=2 must be at least window=4"):
        RollingKVCache(1, 1, 1, 4, 1, capacity=2)
    cache.reset()
    assert cache.length == 0 and cache.start == [0]


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_the_decoder_serves_every_kernel_and_window(pos_encoding):
    x = np.random.default_rng(3).integers(0, 23, (2, 40))
    unbounded = pos_encoding in UNBOUNDED
    for attention, window in zip(ATTENTIONS, (None, 3, 5)):
        model = random_model(attention=attention, window=window, pos_encoding=pos_encoding)  # context 16
        T = 40 if unbounded and window else 16  # a windowed rope/alibi/none model decodes past its context
        full = host((with_config(model, context_length=40) if T > 16 else model)(x[:, :T])[0])
        dec = model.make_decoder(batch_size=2, max_len=8 if window else None)  # tables shorter than the run
        np.testing.assert_allclose(dec.prefill(x[:, :5]), full[:, 4], atol=1e-5)
        for t in range(5, T):
            np.testing.assert_allclose(dec.step(x[:, t]), full[:, t], atol=1e-5, err_msg=f"{attention} {t}")
        if not unbounded and window:
            with pytest.raises(ValueError, match="position 16 is past context_length=16"):
                dec.step(x[:, 0])
    model = random_model(window=4, pos_encoding=pos_encoding)
    prompt = x[:, :4]
    np.testing.assert_array_equal(model.generate(prompt, 20, temperature=0.0),
                                  model.generate(prompt, 20, temperature=0.0, fast_decode=False))


def test_long_inputs_and_their_limits():
    model = random_model(window=4, context_length=8)  # rope: reads any length
    assert model.max_positions is None and model(np.zeros((1, 40), np.int64))[0].shape == (1, 40, 23)
    learned = random_model(window=4, context_length=8, pos_encoding="learned")  # a table of 8 positions
    assert learned.max_positions == 8
    with pytest.raises(ValueError, match="T=9 tokens but context_length=8"):
        learned(np.zeros((1, 9), np.int64))
    cache = learned.make_cache()
    learned(np.zeros((1, 8), np.int64), cache=cache)
    with pytest.raises(ValueError, match="go past context_length=8"):
        learned(np.zeros((1, 1), np.int64), cache=cache)
    out = learned.generate(np.zeros((1, 3), np.int64), 10, temperature=0.0)  # slides as before: re-reads
    np.testing.assert_array_equal(out, learned.generate(np.zeros((1, 3), np.int64), 10, temperature=0.0,
                                                        use_cache=False))


def test_flash_in_training_with_dropout_is_refused_and_the_prefix_cache_refuses_a_window():
    from tinyllm.inference.prefix_cache import PrefixCache

    model = random_model(attention="flash", dropout=0.1).train()
    with pytest.raises(ValueError, match="applies no dropout to the attention weights"):
        model(np.zeros((1, 4), np.int64))
    assert model.eval()(np.zeros((1, 4), np.int64))[0].shape == (1, 4, 23)  # eval: no dropout, no problem
    with pytest.raises(ValueError, match="sliding window"):
        PrefixCache(random_model(window=4))
    assert "attention='flash', window=3" in repr(random_model(attention="flash", window=3).transformer.h[0].attn)
