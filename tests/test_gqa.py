"""Multi-head to grouped-query attention by mean-pooling key and value heads (tinyllm/nn/gqa.py, §9)."""

import numpy as np
import pytest

import tinyllm
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.gqa import mean_pool_kv_heads

CFG = GPTConfig(vocab_size=20, context_length=12, n_layer=2, n_head=4, d_model=16, pos_encoding="rope")


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def model(seed=0, **kw):
    tinyllm.manual_seed(seed)
    m = GPT(GPTConfig(**{**CFG.to_dict(), **kw})).eval()
    rng = np.random.default_rng(seed)
    for p in m.parameters():
        p.data[...] = tinyllm.tensor(rng.normal(0, 0.4, p.shape).astype(np.float32)).data
    return m


X = np.random.default_rng(0).integers(0, 20, (2, 12))


def test_pooled_rows_are_the_means_of_each_groups_heads():
    mha = model()
    gqa = mean_pool_kv_heads(mha, 2)
    assert gqa.config.n_kv_head == 2 and mha.config.n_kv_head is None  # the original is untouched
    C, hs = 16, 4
    for layer in range(2):
        old = host(mha.transformer.h[layer].attn.c_attn.weight)
        new = host(gqa.transformer.h[layer].attn.c_attn.weight)
        assert new.shape == (C + 2 * 2 * hs, C)
        np.testing.assert_array_equal(new[:C], old[:C])  # the queries stay
        for kind in (0, 1):  # keys, then values
            heads = old[C + kind * 4 * hs:C + (kind + 1) * 4 * hs].reshape(4, hs, C)
            pooled = new[C + kind * 2 * hs:C + (kind + 1) * 2 * hs].reshape(2, hs, C)
            np.testing.assert_allclose(pooled, heads.reshape(2, 2, hs, C).mean(1), rtol=1e-6)
        bias = host(gqa.transformer.h[layer].attn.c_attn.bias)
        old_b = host(mha.transformer.h[layer].attn.c_attn.bias)
        np.testing.assert_allclose(bias[C:C + 2 * hs], old_b[C:C + 4 * hs].reshape(2, 2, hs).mean(1).reshape(-1),
                                   rtol=1e-6)
    for name, p in gqa.named_parameters():  # everything else is copied as it is
        if "c_attn" not in name:
            np.testing.assert_array_equal(host(p), host(dict(mha.named_parameters())[name]))


def test_heads_already_equal_within_groups_pool_to_the_same_model():
    mha = model(seed=1)
    C, hs = 16, 4
    for block in mha.transformer.h:
        for p in (block.attn.c_attn.weight, block.attn.c_attn.bias):
            a = host(p).copy()
            for start in (C, C + 4 * hs):  # keys, values: head 1 := head 0, head 3 := head 2
                a[start + hs:start + 2 * hs] = a[start:start + hs]
                a[start + 3 * hs:start + 4 * hs] = a[start + 2 * hs:start + 3 * hs]
            p.data[...] = tinyllm.tensor(a).data
    np.testing.assert_allclose(host(mean_pool_kv_heads(mha, 2)(X)[0]), host(mha(X)[0]), atol=1e-5, rtol=0)
    assert np.abs(host(mean_pool_kv_heads(mha, 1)(X)[0]) - host(mha(X)[0])).max() > 1e-3  # 4 -> 1 does change it


def test_keeping_every_head_is_the_identity_and_a_gqa_model_pools_further():
    mha = model(seed=2)
    np.testing.assert_array_equal(host(mean_pool_kv_heads(mha, 4)(X)[0]), host(mha(X)[0]))
    two = mean_pool_kv_heads(mha, 2)
    one_a, one_b = mean_pool_kv_heads(two, 1), mean_pool_kv_heads(mha, 1)  # a mean of means of equal groups
    np.testing.assert_allclose(host(one_a(X)[0]), host(one_b(X)[0]), atol=1e-5, rtol=0)
    assert one_a.generate(X[:1, :3], 4, temperature=0.0).shape == (1, 7)


@pytest.mark.parametrize("n", [0, 3, 8, True])
def test_a_group_size_that_does_not_divide_is_refused(n):
    with pytest.raises(ValueError, match="positive divisor of the model's 4 key/value heads"):
        mean_pool_kv_heads(model(), n)
