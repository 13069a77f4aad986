"""The mixture-of-experts layer (tinyllm/nn/moe.py, tinyllm/functional/moe.py): routing, values and gradients
against a PyTorch loop over the experts, the sparse path against the dense one, capacity, the auxiliary
losses, and that each expert really computes only its own tokens."""

import math

import numpy as np
import pytest
from gradcheck import gradcheck
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.functional.moe import (
    capacity_of,
    combine,
    dispatch,
    load_balancing_loss,
    route,
    route_reference,
    router_z_loss,
    top_k_experts,
)
from tinyllm.nn.moe import MoE


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def on_device(a):
    return tinyllm.backend.asarray(np.asarray(a), device=tinyllm.get_device())


# ------------------------------------------------------------------ routing


@settings(max_examples=60)
@given(st.integers(1, 5), st.integers(1, 30), st.data())
def test_route_groups_slots_by_expert_in_priority_order_like_the_loop(E, N, data):
    k = data.draw(st.integers(1, E))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    experts = np.stack([rng.permutation(E)[:k] for _ in range(N)])  # k distinct experts per token
    capacity = data.draw(st.one_of(st.none(), st.integers(1, N)))
    r = route(on_device(experts), E, capacity)
    expected = route_reference(experts, E, capacity)
    off = r.offsets
    slots = host(r.slots)
    assert [slots[off[e]:off[e + 1]].tolist() for e in range(E)] == expected
    assert r.routed.tolist() == np.bincount(experts.reshape(-1), minlength=E).tolist()
    assert r.dropped == N * k - sum(map(len, expected))


def test_capacity_and_top_k_by_hand():
    assert capacity_of(4096, 1, 8, 1.25) == 640 and capacity_of(10, 2, 4, 1.0) == 5
    assert capacity_of(3, 1, 8, 0.1) == 1 and capacity_of(3, 1, 8, None) is None
    ids = host(top_k_experts(on_device(np.array([[0.1, 2.0, 0.5], [1.0, 1.0, 0.0]], np.float32)), 2))
    assert ids.tolist() == [[1, 2], [0, 1]]  # largest first; a tie goes to the lower id
    # token 2's first choice (expert 0) beats token 0's second choice for expert 0's one place
    r = route(on_device(np.array([[1, 0], [1, 2], [0, 1]])), 3, capacity=1)
    assert route_reference(np.array([[1, 0], [1, 2], [0, 1]]), 3, 1) == [[4], [0], [3]]
    assert host(r.slots).tolist() == [4, 0, 3] and r.counts.tolist() == [1, 1, 1] and r.dropped == 3


# ------------------------------------------------------------------ the layer against PyTorch


def torch_moe(torch, x, params, E, k, renormalize, capacity, activation):
    """The MoE written as a loop over experts in PyTorch, its own priority loop included; (y, balance, z)."""
    act = {"gelu": torch.nn.functional.gelu, "relu": torch.relu, "silu": torch.nn.functional.silu}[activation]
    N, C = x.shape
    logits = x @ params["router.weight"].T
    p = torch.softmax(logits, dim=-1)
    idx = torch.argsort(-logits, dim=-1, stable=True)[:, :k]
    g = p.gather(1, idx)
    if renormalize:
        g = g / g.sum(-1, keepdim=True)
    kept = [[] for _ in range(E)]
    for j in range(k):
        for n in range(N):
            e = int(idx[n, j])
            if capacity is None or len(kept[e]) < capacity:
                kept[e].append((n, j))
    y = torch.zeros(N, C, dtype=x.dtype)
    for e in range(E):
        if not kept[e]:
            continue
        tok = torch.tensor([n for n, _ in kept[e]])
        j = torch.tensor([jj for _, jj in kept[e]])
        pre = f"experts.{e}."
        h = act(x[tok] @ params[pre + "c_fc.weight"].T + params[pre + "c_fc.bias"])
        h = h @ params[pre + "c_proj.weight"].T + params[pre + "c_proj.bias"]
        y = y.index_add(0, tok, h * g[tok, j][:, None])
    f = torch.bincount(idx.reshape(-1), minlength=E).to(x.dtype) / (N * k)
    balance = E * (f * p.mean(0)).sum()
    z = torch.logsumexp(logits, -1).square().mean()
    return y, balance, z


def big_weights(moe, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    for p in moe.parameters():
        p.data[...] = on_device(rng.normal(0, scale, p.shape).astype(p.dtype))


CASES = [  # (E, k, capacity_factor, renormalize, activation, dense)
    (4, 1, None, None, "gelu", False),
    (4, 2, None, None, "relu", False),
    (3, 1, 0.5, None, "silu", False),
    (4, 2, 0.75, None, "gelu", False),
    (4, 2, 0.75, None, "gelu", True),
    (2, 1, None, True, "gelu", False),
    (4, 4, None, None, "gelu", True),
]


@pytest.mark.parametrize("E, k, cf, renorm, act, dense", CASES)
def test_values_and_gradients_equal_a_pytorch_loop_over_the_experts(torch, E, k, cf, renorm, act, dense):
    C, d_ff, N = 6, 10, 24
    moe = MoE(C, d_ff, E, top_k=k, activation=act, capacity_factor=cf, renormalize=renorm, dense=dense,
              aux_loss_coef=0.3, z_loss_coef=0.2)
    big_weights(moe, seed=E + k)
    rng = np.random.default_rng(1)
    x_np = rng.normal(size=(2, N // 2, C)).astype(np.float32)
    w_np = rng.normal(size=(2, N // 2, C)).astype(np.float32)
    x = tinyllm.tensor(x_np, requires_grad=True)
    y = moe(x)
    ((y * tinyllm.tensor(w_np)).sum() + moe.aux_loss).backward()

    params = {n: torch.tensor(host(p), requires_grad=True) for n, p in moe.named_parameters()}
    xt = torch.tensor(x_np.reshape(N, C), requires_grad=True)
    capacity = capacity_of(N, k, E, cf)
    yt, balance, z = torch_moe(torch, xt, params, E, k, moe.renormalize, capacity, act)
    ((yt * torch.tensor(w_np.reshape(N, C))).sum() + 0.3 * balance + 0.2 * z).backward()

    np.testing.assert_allclose(host(y).reshape(N, C), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host(moe.balance_loss), balance.item(), rtol=1e-5)
    np.testing.assert_allclose(host(moe.z_loss), z.item(), rtol=1e-5)
    np.testing.assert_allclose(host(x.grad).reshape(N, C), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name, p in moe.named_parameters():
        ref = params[name].grad
        got = np.zeros(p.shape, np.float32) if p.grad is None else host(p.grad)  # an idle expert gets None
        np.testing.assert_allclose(got, np.zeros(p.shape) if ref is None else ref.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    assert moe.stats.dropped == (0 if capacity is None else
                                 sum(max(0, c - capacity) for c in moe.stats.routed))


def test_the_pytorch_comparison_can_fail(torch):
    """Swapping two experts' token blocks (a routing bug) is caught by the comparison above."""
    moe = MoE(6, 10, 4, top_k=1)
    big_weights(moe, 0)
    x_np = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32)
    good = host(moe(tinyllm.tensor(x_np)))
    moe.experts[0], moe.experts[1] = moe.experts[1], moe.experts[0]
    params = {n: torch.tensor(host(p)) for n, p in moe.named_parameters()}
    moe.experts[0], moe.experts[1] = moe.experts[1], moe.experts[0]
    yt, _, _ = torch_moe(torch, torch.tensor(x_np), params, 4, 1, False, None, "gelu")
    assert np.abs(good - yt.numpy()).max() > 1e-2


@pytest.mark.parametrize("k, cf", [(1, None), (2, 0.75)])
def test_gradcheck_in_float64(k, cf):
    moe = MoE(3, 5, 3, top_k=k, capacity_factor=cf, aux_loss_coef=0.5, z_loss_coef=0.5).to(np.float64)
    big_weights(moe, 3)
    x = tinyllm.tensor(np.random.default_rng(0).normal(size=(8, 3)), requires_grad=True)
    slots = [(moe.router, "weight"), (moe.experts[0].c_fc, "weight"), (moe.experts[1].c_proj, "bias")]

    def f(x, *ps):  # the layer with the checked leaves in its parameter slots
        saved = [m._parameters[name] for m, name in slots]
        for (m, name), p in zip(slots, ps):
            m._parameters[name] = p
        try:
            return moe(x), moe.aux_loss
        finally:
            for (m, name), p in zip(slots, saved):
                m._parameters[name] = p

    gradcheck(f, [x] + [m._parameters[name] for m, name in slots])


# ------------------------------------------------------------------ sparse is dense, minus the skipped work


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sparse_equals_dense_and_each_expert_sees_only_its_tokens(k):
    moe = MoE(8, 16, 4, top_k=k)
    big_weights(moe, k)
    x = tinyllm.randn(3, 10, 8)
    rows = []
    for e, expert in enumerate(moe.experts):
        def spy(h, _e=e, _fwd=expert.forward):
            rows.append((_e, h.shape[0]))
            return _fwd(h)
        expert.forward = spy
    sparse = host(moe(x))
    assert sorted(rows) == [(e, c) for e, c in enumerate(moe.stats.tokens_per_expert) if c]
    assert sum(c for _, c in rows) == 30 * k  # N·k rows in all, not N·E
    rows.clear()
    moe.dense = True
    dense = host(moe(x))
    assert rows == [(e, 30) for e in range(4)]  # dense: every expert on every token
    np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-6)


def test_top_k_equal_to_n_expert_is_the_softmax_mixture_of_all_experts():
    moe = MoE(4, 8, 3, top_k=3)
    big_weights(moe, 0)
    x = tinyllm.randn(5, 4)
    p = host(tinyllm.functional.softmax(moe.router(x), dim=-1))
    expected = sum(p[:, e:e + 1] * host(moe.experts[e](x)) for e in range(3))
    np.testing.assert_allclose(host(moe(x)), expected, rtol=1e-5, atol=1e-6)


def test_top_1_keeps_switchs_raw_gate_and_renormalizing_it_cuts_the_router_off():
    x = tinyllm.randn(6, 4)
    biggest = {}
    for renorm in (None, True):
        moe = MoE(4, 8, 3, renormalize=renorm, aux_loss_coef=0.0, z_loss_coef=0.0)
        big_weights(moe, 1)
        moe(x).sum().backward()
        biggest[renorm] = np.abs(host(moe.router.weight.grad)).max()
    assert biggest[None] > 1e-2 and biggest[True] < 1e-5  # p/p = 1: zero up to float32 rounding


# ------------------------------------------------------------------ capacity


def test_capacity_drops_overflow_in_training_only_and_a_dropped_token_gets_zero():
    moe = MoE(4, 8, 2, capacity_factor=0.5)
    big_weights(moe, 2)
    x = tinyllm.randn(1, 16, 4)
    y = host(moe(x))[0]
    s = moe.stats
    assert s.capacity == 4 and s.tokens_per_expert == [min(c, 4) for c in s.routed] and s.dropped > 0
    kept_rows = np.abs(y).sum(-1) > 0
    assert kept_rows.sum() == sum(s.tokens_per_expert)  # top-1: a dropped token's output is exactly 0
    moe.eval()
    y_eval = host(moe(x))[0]
    assert moe.stats.dropped == 0 and moe.stats.capacity is None
    np.testing.assert_array_equal(y[kept_rows], y_eval[kept_rows])


# ------------------------------------------------------------------ the auxiliary losses and stats


def test_balance_loss_is_1_when_balanced_and_E_when_collapsed():
    E, N = 4, 8
    uniform = tinyllm.tensor(np.full((N, E), 1 / E, np.float32))
    even = route(on_device(np.arange(N)[:, None] % E), E)
    assert np.isclose(host(load_balancing_loss(uniform, even)), 1.0)
    sure = tinyllm.tensor(np.eye(E, dtype=np.float32)[np.zeros(N, int)])  # every token certain of expert 0
    collapsed = route(on_device(np.zeros((N, 1), np.int64)), E)
    assert np.isclose(host(load_balancing_loss(sure, collapsed)), E)
    logits = np.random.default_rng(0).normal(size=(N, E)).astype(np.float32)
    lse = np.log(np.exp(logits).sum(-1))
    assert np.isclose(host(router_z_loss(tinyllm.tensor(logits))), np.mean(lse ** 2), rtol=1e-6)


def test_stats_count_every_token_and_the_entropy_is_in_range():
    moe = MoE(4, 8, 4, top_k=2)
    moe(tinyllm.randn(2, 5, 4))
    s = moe.stats
    assert sum(s.tokens_per_expert) == 20 and s.routed == s.tokens_per_expert and s.dropped == 0
    assert 0 <= s.router_entropy <= math.log(4) + 1e-6
    assert set(s.to_dict()) == {"tokens_per_expert", "routed", "dropped", "capacity", "router_entropy"}
    moe.router.weight.data[...] = 0  # a uniform router: entropy log E
    moe(tinyllm.randn(3, 4))
    assert np.isclose(moe.stats.router_entropy, math.log(4), atol=1e-6)


def test_dispatch_and_combine_check_shapes_and_round_trip():
    r = route(on_device(np.array([[1], [0], [1]])), 2)
    x = tinyllm.tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    xs = dispatch(x, r)
    assert host(xs).tolist() == [[2, 3], [0, 1], [4, 5]]  # expert 0's token first, then expert 1's
    y = combine(xs, tinyllm.ones(3, 1), r)
    np.testing.assert_array_equal(host(y), host(x))
    with pytest.raises(ValueError, match="N = 3 tokens"):
        dispatch(tinyllm.ones(4, 2), r)
    with pytest.raises(ValueError, match="S = 3 kept slots"):
        combine(tinyllm.ones(2, 2), tinyllm.ones(3, 1), r)
    with pytest.raises(ValueError, match=r"gates must be \(N, k\)"):
        combine(xs, tinyllm.ones(3, 2), r)


@pytest.mark.parametrize("kw, match", [
    (dict(n_expert=0), "n_expert must be a positive integer"),
    (dict(n_expert=2, top_k=3), r"top_k must be an integer in \[1, n_expert=2\]"),
    (dict(n_expert=2, capacity_factor=0), "capacity_factor must be > 0"),
])
def test_bad_arguments_say_what_to_do(kw, match):
    with pytest.raises(ValueError, match=match):
        MoE(4, 8, **kw)
