"""The prefix cache changes nothing but the speed: logits after a prefix-cache prefill equal a full forward.

Also: the chained block keys, LRU eviction under a byte budget, the last-token rule (an entirely cached
request still computes its last position), batches, and the hit/miss counts.
"""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.inference.kv_cache import KVCache
from tinyllm.inference.prefix_cache import PrefixCache, block_hashes
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.config import POS_ENCODINGS

V, CTX = 11, 24


def make_model(pos_encoding="learned", n_kv_head=None, seed=0, **kw):
    tinyllm.manual_seed(seed)
    cfg = GPTConfig(vocab_size=V, context_length=CTX, n_layer=2, n_head=4, d_model=16, n_kv_head=n_kv_head,
                    pos_encoding=pos_encoding, **kw)
    return GPT(cfg).eval()


def full_logits(model, ids):
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[None]
    with tinyllm.no_grad():
        return tinyllm.to_numpy(model(ids)[0].data)  # (B, T, V)


def block_bytes(model, bs):
    c = model.config
    return KVCache.bytes_needed(c.n_layer, c.kv_heads, c.head_dim, bs)


def check_prefill(pc, ids, atol=1e-5):
    """Prefill through the cache and compare with a full forward; return the stats."""
    logits, cache, stats = pc.prefill(ids)
    ref = full_logits(pc.model, ids)
    B, T = ref.shape[:2]
    assert logits.shape == (B, T - stats.n_reused, V)
    np.testing.assert_allclose(logits, ref[:, stats.n_reused:], atol=atol)
    assert cache.length == T and 0 <= stats.n_reused <= T - 1
    assert stats.hit.shape == (B, T) and stats.hit.sum() == B * stats.n_reused
    assert pc.nbytes <= pc.max_bytes
    assert pc.nbytes == sum(b.nbytes for b in pc.blocks.values()) == len(pc) * block_bytes(pc.model, pc.block_size)
    return stats, cache


# ---------------------------------------------------------------------------- keys


def test_block_keys_chain_the_whole_prefix():
    a = block_hashes([5, 1, 2, 7, 3], 2)
    assert len(a) == 2  # the lone trailing 3 makes no block
    assert a[0] == hashlib.blake2b(np.asarray([5, 1], dtype="<i8").tobytes(), digest_size=16).digest()
    assert a[1] == hashlib.blake2b(a[0] + np.asarray([2, 7], dtype="<i8").tobytes(), digest_size=16).digest()
    b = block_hashes([6, 1, 2, 7], 2)
    assert b[0] != a[0] and b[1] != a[1]  # the same second block after another first block: another key
    assert block_hashes(np.asarray([5, 1, 2, 7], dtype=np.int32), 2) == a  # the dtype of the ids does not matter
    assert block_hashes([1, 2, 3], 4) == []


# ---------------------------------------------------------------------------- equivalence


@st.composite
def workloads(draw):
    """Requests that share prefixes: each is a prefix of a few stems, plus a random tail."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    stems = [rng.integers(0, V, CTX) for _ in range(draw(st.integers(1, 3)))]
    requests = []
    for _ in range(draw(st.integers(2, 6))):
        stem = stems[draw(st.integers(0, len(stems) - 1))]
        keep = draw(st.integers(0, CTX))
        T = draw(st.integers(max(1, keep), CTX))
        requests.append(np.concatenate([stem[:keep], rng.integers(0, V, T - keep)]))
    return requests


@settings(max_examples=30)
@given(pos=st.sampled_from(POS_ENCODINGS), gqa=st.booleans(), bs=st.integers(1, 7),
       budget_blocks=st.sampled_from([0, 1, 2, 5, 1000]), requests=workloads())
def test_prefix_cache_logits_equal_a_full_forward(pos, gqa, bs, budget_blocks, requests):
    model = make_model(pos, n_kv_head=2 if gqa else None)
    pc = PrefixCache(model, block_size=bs, max_bytes=budget_blocks * block_bytes(model, bs))
    for ids in requests:
        check_prefill(pc, ids)
    s = pc.stats
    assert s.requests == len(requests) and s.tokens == sum(len(r) for r in requests)
    assert s.stored - s.evicted == len(pc)
    if budget_blocks == 0:
        assert len(pc) == 0 and s.hit_tokens == 0


@pytest.mark.parametrize("pos", POS_ENCODINGS)
def test_decoding_continues_from_a_prefix_cache_prefill(pos):
    model = make_model(pos)
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, V, 13)
    pc = PrefixCache(model, block_size=4)
    pc.prefill(prompt)
    logits, cache, stats = pc.prefill(prompt)  # 3 blocks cached: 12 positions reused, the 13th computed
    assert stats.n_reused == 12
    seq = list(prompt)
    for _ in range(5):  # greedy decode steps on the returned cache equal full forwards of the whole sequence
        nxt = int(logits[0, -1].argmax())
        seq.append(nxt)
        with tinyllm.no_grad():
            step, _ = model(np.asarray([[nxt]]), cache=cache)
        logits = tinyllm.to_numpy(step.data)
        np.testing.assert_allclose(logits[0, -1], full_logits(model, seq)[0, -1], atol=1e-5)


# ---------------------------------------------------------------------------- edge cases


def test_first_request_misses_then_an_identical_one_reuses_all_but_its_last_token():
    model = make_model()
    ids = np.random.default_rng(2).integers(0, V, 12)
    pc = PrefixCache(model, block_size=4)
    first, _ = check_prefill(pc, ids)
    assert first.n_reused == 0 and first.block_misses == 3 and first.block_hits == 0 and first.stored == 3
    again, _ = check_prefill(pc, ids)  # entirely cached, T a multiple of the block size
    assert again.n_reused == 11 and again.n_computed == 1 and again.block_hits == 3 and again.block_misses == 0
    assert again.hit[0].tolist() == [True] * 11 + [False]
    assert [b.hits for b in pc.blocks.values()] == [1, 1, 1]
    one, _ = check_prefill(pc, ids[:1])  # a single token: nothing to reuse
    assert one.n_reused == 0
    longer, _ = check_prefill(pc, np.concatenate([ids, [1, 2, 3]]))
    assert longer.n_reused == 12 and longer.stored == 0  # 15 tokens: 3 full blocks, all stored already
    assert pc.stats.hit_rate == pytest.approx((11 + 12) / (12 + 12 + 1 + 15))


def test_partial_blocks_are_computed_not_stored():
    model = make_model()
    pc = PrefixCache(model, block_size=5)
    ids = np.random.default_rng(3).integers(0, V, 13)
    check_prefill(pc, ids)
    assert len(pc) == 2  # positions 10-12 are no full block
    stats, _ = check_prefill(pc, np.concatenate([ids[:12], [0, 0, 0, 0]]))  # shares 12 tokens: 2 blocks = 10
    assert stats.n_reused == 10 and stats.stored == 1  # and its third block (positions 10-14) is new


def test_lru_eviction_under_a_tiny_budget_drops_the_tails_of_chains_first():
    model = make_model()
    bs = 3
    pc = PrefixCache(model, block_size=bs, max_bytes=2 * block_bytes(model, bs))
    a = np.random.default_rng(4).integers(0, V, 10)  # 3 full blocks, room for 2
    s, _ = check_prefill(pc, a)
    assert s.stored == 3 and s.evicted == 1 and len(pc) == 2
    assert sorted(b.index for b in pc.blocks.values()) == [0, 1]  # the deepest block went, the chain still works
    s, _ = check_prefill(pc, a)
    assert s.n_reused == 6
    b = np.random.default_rng(5).integers(0, V, 7)  # another 2 blocks push a's out (a's were used less recently)
    check_prefill(pc, b)
    assert pc.cached_positions(a) == 0 and pc.cached_positions(b) == 6
    s, _ = check_prefill(pc, a)
    assert s.n_reused == 0
    assert pc.stats.evicted == pc.stats.stored - len(pc)


def test_a_budget_too_small_for_one_block_stores_nothing():
    model = make_model()
    pc = PrefixCache(model, block_size=4, max_bytes=block_bytes(model, 4) - 1)
    ids = np.arange(9) % V
    for _ in range(2):
        s, _ = check_prefill(pc, ids)
        assert s.n_reused == 0 and s.stored == 0 and len(pc) == 0


def test_a_batch_reuses_what_every_row_has_cached():
    model = make_model("rope", n_kv_head=1)
    rng = np.random.default_rng(6)
    pc = PrefixCache(model, block_size=4)
    a = rng.integers(0, V, 14)
    check_prefill(pc, a)
    batch = np.stack([a, np.concatenate([a[:8], rng.integers(0, V, 6)])])  # row 0: 3 blocks cached, row 1: 2
    s, cache = check_prefill(pc, batch)
    assert s.n_reused == 8 and cache.batch_size == 2 and s.hit.shape == (2, 14)
    assert s.block_hits == 4 and s.block_misses == 2 and s.stored == 1  # row 1's third block is new
    s, _ = check_prefill(pc, batch)
    assert s.n_reused == 12


def test_training_mode_is_restored_and_no_graph_is_built():
    model = make_model(dropout=0.5).train()
    pc = PrefixCache(model, block_size=2)
    ids = np.arange(6) % V
    logits, _, _ = pc.prefill(ids)
    assert model.training and isinstance(logits, np.ndarray)
    model.eval()
    np.testing.assert_allclose(logits, full_logits(model, ids), atol=1e-5)  # dropout was off inside prefill


def test_bad_arguments_are_clear_errors():
    model = make_model()
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        PrefixCache(model, block_size=0)
    with pytest.raises(ValueError, match="max_bytes must be an integer >= 0"):
        PrefixCache(model, max_bytes=-1)
    pc = PrefixCache(model)
    with pytest.raises(ValueError, match="at least one token"):
        pc.prefill(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=f"T={CTX + 1} tokens but the model's context_length is {CTX}"):
        pc.prefill(np.zeros(CTX + 1, dtype=np.int64))
    with pytest.raises(ValueError, match="integer token ids"):
        pc.prefill(np.zeros(3))
    assert pc.stats.requests == 0 and "blocks=0" in repr(pc)
