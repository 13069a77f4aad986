"""The three attention kernels compute one function: scaled_dot_product_attention (the plain math),
memory_efficient_attention (queries in chunks) and flash_attention (tiles, online softmax).

Checked on Hypothesis shapes against each other and against PyTorch's SDPA given the equivalent
boolean mask (plus ALiBi as a float mask): values and gradients within 1e-5 in float32 and 1e-10
in float64, with L != S, lengths that the blocks do not divide, one query against a long cache,
grouped-query attention, windows, offsets (a KV cache's queries sit after its keys) and every
block size down to 1. Then what makes flash flash: it keeps no (L, S) array for the backward and
never visits a tile that the mask hides entirely; and everything stays on the strict device.
"""

import importlib

import numpy as np
import pytest
from gradcheck import gradcheck
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tinyllm
import tinyllm.functional as F
from tinyllm import backend
from tinyllm.nn.positional import alibi_bias, alibi_slopes
from tinyllm.tensor import Tensor

f32, f64 = np.float32, np.float64
# subtle: F.flash_attention is the function; the module of the same name is reached through sys.modules
flash_module = importlib.import_module("tinyllm.functional.flash_attention")
TOL = {f32: dict(rtol=1e-5, atol=1e-5), f64: dict(rtol=1e-10, atol=1e-10)}
KERNELS = ("sdpa", "memory_efficient", "flash")


def host(x):
    return tinyllm.to_numpy(x.data if isinstance(x, Tensor) else x)


def visible(L, S, causal, window, offset):
    """The boolean mask (L, S) the arguments stand for: query i at position offset + i sees key j."""
    i, j = np.arange(L)[:, None] + offset, np.arange(S)[None, :]
    keep = (j <= i) if causal else np.ones((L, S), bool)
    if window is not None:
        keep &= j > i - window
    return keep


def run(kernel, arrays, dtype, causal=False, window=None, offset=0, alibi=False, blocks=(3, 4)):
    """One kernel, forward and backward of a fixed random weighting: [out, dq, dk, dv] on the host."""
    q, k, v = (tinyllm.tensor(a.astype(dtype), requires_grad=True) for a in arrays)
    Hq, Hk = q.shape[1], k.shape[1]
    kw = dict(is_causal=causal, window=window, offset=offset, enable_gqa=Hq != Hk)
    if kernel == "sdpa":
        mask = None
        if alibi:
            L, S = q.shape[2], k.shape[2]
            mask = tinyllm.tensor(alibi_bias(Hq, np.arange(L) + offset, np.arange(S)).astype(dtype))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **kw)
    else:
        kw["alibi_slopes"] = alibi_slopes(Hq) if alibi else None
        if kernel == "flash":
            y = F.flash_attention(q, k, v, block_q=blocks[0], block_k=blocks[1], **kw)
        else:
            y = F.memory_efficient_attention(q, k, v, chunk_size=blocks[0], **kw)
    w = np.random.default_rng(7).standard_normal(y.shape).astype(dtype)
    y.backward(tinyllm.tensor(w))
    return [host(y)] + [host(t.grad) for t in (q, k, v)]


def run_torch(torch, arrays, dtype, causal=False, window=None, offset=0, alibi=False):
    """torch.nn.functional.scaled_dot_product_attention with the equivalent mask."""
    q, k, v = (torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays)
    Hq, L, S = q.shape[1], q.shape[2], k.shape[2]
    keep = visible(L, S, causal, window, offset)
    if alibi:  # a float mask: ALiBi's bias, and -inf where hidden
        bias = alibi_bias(Hq, np.arange(L) + offset, np.arange(S))
        mask = torch.tensor(np.where(keep, bias, -np.inf).astype(dtype))
    else:
        mask = torch.tensor(keep)
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=Hq != k.shape[1])
    w = np.random.default_rng(7).standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.tensor(w))
    return [y.detach().numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()]


def qkv(B, Hq, Hk, L, S, E, Ev, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, Hq, L, E)), rng.standard_normal((B, Hk, S, E)),
            rng.standard_normal((B, Hk, S, Ev))]


def assert_same(got, want, dtype, what):
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"{what}: {name}")


@st.composite
def cases(draw):
    Hk = draw(st.integers(1, 2))
    Hq = Hk * draw(st.integers(1, 3))
    L, S = draw(st.integers(1, 20)), draw(st.integers(1, 24))
    causal = draw(st.booleans())
    window = draw(st.none() | st.integers(1, 12)) if causal else None
    offset = draw(st.sampled_from([0, S - L]) | st.integers(-3, S)) if causal else 0
    return dict(shape=(draw(st.integers(1, 2)), Hq, Hk, L, S, draw(st.integers(1, 8)), draw(st.integers(1, 8))),
                causal=causal, window=window, offset=offset, alibi=draw(st.booleans()),
                blocks=(draw(st.integers(1, 25)), draw(st.integers(1, 25))),
                dtype=draw(st.sampled_from([f32, f64])), seed=draw(st.integers(0, 99)))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cases())
@example(dict(shape=(1, 4, 2, 1, 300, 8, 8), causal=True, window=64, offset=299, alibi=True,  # one query, long cache
              blocks=(1, 16), dtype=f32, seed=0))
@example(dict(shape=(2, 2, 1, 17, 17, 4, 3), causal=True, window=None, offset=0, alibi=False,  # blocks of 1
              blocks=(1, 1), dtype=f64, seed=1))
def test_the_three_kernels_agree_with_torch(torch, case):
    arrays = qkv(*case["shape"], seed=case["seed"])
    opts = {k: case[k] for k in ("causal", "window", "offset", "alibi")}
    want = run_torch(torch, arrays, case["dtype"], **opts)
    for kernel in KERNELS:
        assert_same(run(kernel, arrays, case["dtype"], blocks=case["blocks"], **opts), want, case["dtype"], kernel)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 8, 64])
def test_every_block_size_gives_the_same_numbers(block):
    arrays = qkv(1, 4, 2, 13, 13, 4, 4, seed=3)
    opts = dict(causal=True, window=5, alibi=True)
    want = run("sdpa", arrays, f64, **opts)
    for bq, bk in ((block, 1), (1, block), (block, block), (block, 64)):
        assert_same(run("flash", arrays, f64, blocks=(bq, bk), **opts), want, f64, f"flash {bq}x{bk}")
    assert_same(run("memory_efficient", arrays, f64, blocks=(block, 0), **opts), want, f64, "memory_efficient")


def test_flash_gradcheck():
    q, k, v = (tinyllm.tensor(a, requires_grad=True) for a in qkv(1, 2, 1, 4, 5, 3, 2, seed=5))
    gradcheck(lambda q, k, v: F.flash_attention(q, k, v, is_causal=True, window=3, offset=1, enable_gqa=True,
                                                alibi_slopes=[0.5, 0.25], block_q=2, block_k=2), [q, k, v])
    gradcheck(lambda q, k, v: F.memory_efficient_attention(q, k, v, is_causal=True, offset=1, enable_gqa=True,
                                                           chunk_size=3), [q, k, v])


def test_flash_keeps_no_score_matrix_for_the_backward():
    L = S = 64
    q, k, v = (tinyllm.tensor(a.astype(f32), requires_grad=True) for a in qkv(1, 2, 2, L, S, 8, 8))
    for y in (F.flash_attention(q, k, v, is_causal=True, block_q=16, block_k=16),
              F.memory_efficient_attention(q, k, v, is_causal=True, chunk_size=16)):
        saved = [a for a in y._ctx.saved if backend.is_array(a)]
        assert max(a.size for a in saved) == 2 * L * 8  # Q, K, V, out: (B, H, L, hs); lse (B, H, L)
        assert sum(a.size for a in saved) == 4 * 2 * L * 8 + 2 * L
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert any(a is not None and a.size == 2 * L * S for a in y._ctx.saved)  # the plain version keeps P


@pytest.mark.parametrize("window,want", [(None, 10 + 10), (2, 7 + 7), (5, 9 + 9)])
def test_flash_visits_only_the_tiles_the_mask_leaves_open(monkeypatch, window, want):
    # L = S = 8 in blocks of 2: 16 tiles per pass without a mask. Causal: query blocks [0,2) .. [6,8) see keys
    # [0,2), [0,4), [0,6), [0,8): 1 + 2 + 3 + 4 tiles. A window of 2: keys [0,2), [1,4), [3,6), [5,8), cut from
    # their first key on: 1 + 2 + 2 + 2. A window of 5: [0,2), [0,4), [0,6), [2,8): 1 + 2 + 3 + 3. The backward
    # (keys outside, the queries that see them inside) visits as many.
    calls = []
    real = flash_module.tile_bias_
    monkeypatch.setattr(flash_module, "tile_bias_", lambda s, *a: calls.append(a[1:]) or real(s, *a))
    q, k, v = (tinyllm.tensor(a, requires_grad=True) for a in qkv(1, 1, 1, 8, 8, 2, 2))
    F.flash_attention(q, k, v, is_causal=True, window=window, block_q=2, block_k=2).sum().backward()
    assert len(calls) == want


@pytest.mark.parametrize("kernel", KERNELS[1:])
def test_the_kernels_stay_on_the_strict_device(kernel):
    with tinyllm.use_device("strict"):
        arrays = qkv(1, 4, 2, 6, 9, 4, 4)
        q, k, v = (tinyllm.tensor(a.astype(f32), requires_grad=True) for a in arrays)
        backend.reset_transfer_stats()
        fn = F.flash_attention if kernel == "flash" else F.memory_efficient_attention
        y = fn(q, k, v, is_causal=True, window=3, offset=3, enable_gqa=True, alibi_slopes=alibi_slopes(4))
        y.backward(tinyllm.ones(*y.shape))
        assert backend.transfer_stats()["explicit"] == 0
        assert all(t.grad.device == "strict" for t in (q, k, v))


def test_errors_say_what_to_pass():
    q, k = tinyllm.randn(1, 4, 5, 8), tinyllm.randn(1, 2, 5, 8)
    for fn in (F.flash_attention, F.memory_efficient_attention):
        with pytest.raises(ValueError, match="enable_gqa=True"):
            fn(q, k, k)
        with pytest.raises(ValueError, match="must be 4-D"):
            fn(q[0], k[0], k[0])
        with pytest.raises(ValueError, match="a sliding window is causal"):
            fn(q, q, q, window=2)
        with pytest.raises(ValueError, match=r"alibi_slopes must hold one slope per query head, shape \(4,\)"):
            fn(q, q, q, alibi_slopes=[0.5])
        with pytest.raises(TypeError, match="share one floating dtype"):
            fn(q, q, q.double())
    with pytest.raises(ValueError, match="block_k must be a positive integer"):
        F.flash_attention(q, q, q, block_k=0)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        F.memory_efficient_attention(q, q, q, chunk_size=1.5)
    with pytest.raises(ValueError, match="a sliding window is causal"):
        F.scaled_dot_product_attention(q, q, q, window=2)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        F.scaled_dot_product_attention(q, q, q, is_causal=True, window=0)
