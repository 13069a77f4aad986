"""tinyllm.optim against torch.optim: the same parameters, the same loss, the same trajectory."""

import math

import numpy as np
import pytest

import tinyllm
import tinyllm.optim as optim
from tinyllm import backend
from tinyllm.serialization import load, save

STEPS = 20


# ----------------------------------------------------------------------------- a shared problem


def _problem(dtype=np.float64, seed=0):
    """Initial W (4, 3), b (3,) and a batch X (8, 4) -> Y (8, 3), as NumPy arrays."""
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((4, 3)).astype(dtype),
        "b": rng.standard_normal(3).astype(dtype),
        "X": rng.standard_normal((8, 4)).astype(dtype),
        "Y": rng.standard_normal((8, 3)).astype(dtype),
    }


def _ours(prob):
    W = tinyllm.tensor(prob["W"], requires_grad=True)
    b = tinyllm.tensor(prob["b"], requires_grad=True)
    X, Y = tinyllm.tensor(prob["X"]), tinyllm.tensor(prob["Y"])

    def loss_fn():
        return ((X @ W + b - Y) ** 2).mean()  # a least-squares loss: gradients change every step

    return W, b, loss_fn


def _theirs(torch, prob):
    W = torch.tensor(prob["W"], requires_grad=True)
    b = torch.tensor(prob["b"], requires_grad=True)
    X, Y = torch.tensor(prob["X"]), torch.tensor(prob["Y"])

    def loss_fn():
        return ((X @ W + b - Y) ** 2).mean()

    return W, b, loss_fn


def _run(opt, loss_fn, steps=STEPS, sched=None):
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
        if sched is not None:
            sched.step()


def _host(t):
    return tinyllm.to_numpy(t.data)


def _groups(params, spec):
    """spec None: a plain list; else a list of dicts with the params filled in by position."""
    if spec is None:
        return list(params)
    return [dict(g, params=[params[i] for i in g["params"]]) for g in spec]


# ----------------------------------------------------------------------------- oracle: SGD and AdamW

SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05),
]


@pytest.mark.parametrize("kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={v}" for a, v in k.items()))
def test_sgd_matches_torch(torch, kwargs):
    prob = _problem()
    W, b, loss = _ours(prob)
    tW, tb, tloss = _theirs(torch, prob)
    _run(optim.SGD([W, b], **kwargs), loss)
    _run(torch.optim.SGD([tW, tb], **kwargs), tloss)
    np.testing.assert_allclose(_host(W), tW.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(_host(b), tb.detach().numpy(), rtol=0, atol=1e-6)
    assert W.dtype == np.float64


def test_sgd_param_groups_match_torch(torch):
    prob = _problem()
    W, b, loss = _ours(prob)
    tW, tb, tloss = _theirs(torch, prob)
    spec = [{"params": [0], "weight_decay": 0.1}, {"params": [1], "lr": 0.02, "momentum": 0.5}]
    _run(optim.SGD(_groups([W, b], spec), lr=0.1, momentum=0.9), loss)
    _run(torch.optim.SGD(_groups([tW, tb], spec), lr=0.1, momentum=0.9), tloss)
    np.testing.assert_allclose(_host(W), tW.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(_host(b), tb.detach().numpy(), rtol=0, atol=1e-6)


ADAMW_CASES = [
    (dict(), None),
    (dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), None),
    # the usual split: decay the matrix, not the bias; the bias also gets its own lr
    (dict(lr=0.05, weight_decay=0.1), [{"params": [0]}, {"params": [1], "weight_decay": 0.0, "lr": 0.02}]),
    (dict(lr=0.03, weight_decay=0.0), None),
]


@pytest.mark.parametrize("kwargs,spec", ADAMW_CASES, ids=["defaults", "custom", "groups", "no-decay"])
def test_adamw_matches_torch(torch, kwargs, spec):
    prob = _problem()
    W, b, loss = _ours(prob)
    tW, tb, tloss = _theirs(torch, prob)
    _run(optim.AdamW(_groups([W, b], spec), **kwargs), loss)
    _run(torch.optim.AdamW(_groups([tW, tb], spec), **kwargs), tloss)
    np.testing.assert_allclose(_host(W), tW.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(_host(b), tb.detach().numpy(), rtol=0, atol=1e-6)


def test_adamw_with_schedule_and_clipping_matches_torch(torch):
    """A real training loop: backward, clip, step, schedule; 20 steps, float64."""
    prob = _problem()
    W, b, loss = _ours(prob)
    tW, tb, tloss = _theirs(torch, prob)
    opt = optim.AdamW([W, b], lr=0.1, weight_decay=0.1)
    sched = optim.WarmupCosine(opt, warmup_steps=5, max_steps=15, min_lr_ratio=0.1)
    topt = torch.optim.AdamW([tW, tb], lr=0.1, weight_decay=0.1)
    tsched = torch.optim.lr_scheduler.LambdaLR(
        topt,
        lambda s: s / 5 if s < 5 else (0.1 if s >= 15 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 5) / 10))),
    )
    for _ in range(STEPS):
        opt.zero_grad()
        loss().backward()
        n = optim.clip_grad_norm_([W, b], 0.5)
        opt.step()
        sched.step()
        topt.zero_grad()
        tloss().backward()
        tn = torch.nn.utils.clip_grad_norm_([tW, tb], 0.5)
        topt.step()
        tsched.step()
        assert float(n.item()) == pytest.approx(float(tn), rel=1e-9)
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
    np.testing.assert_allclose(_host(W), tW.detach().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(_host(b), tb.detach().numpy(), rtol=0, atol=1e-6)


def test_params_without_grad_are_skipped(torch):
    prob = _problem()
    W, b, loss = _ours(prob)
    opt = optim.AdamW([W, b], lr=0.1)
    loss().backward()
    b.grad = None  # as if b were not used this step
    before = _host(b).copy()
    opt.step()
    np.testing.assert_array_equal(_host(b), before)
    assert b not in opt.state and opt.state[W]["step"] == 1


# ----------------------------------------------------------------------------- dtypes and devices


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.1),
], ids=["sgd", "adamw"])
def test_float32_stays_float32(torch, make):
    prob = _problem(np.float32)
    W, b, loss = _ours(prob)
    tW, tb, tloss = _theirs(torch, prob)
    opt = make([W, b])
    _run(opt, loss)
    assert W.dtype == np.float32 and b.dtype == np.float32
    for state in opt.state.values():
        for v in state.values():
            if backend.is_array(v):
                assert v.dtype == np.float32
    torch_opt = type(opt).__name__
    kwargs = {k: v for k, v in opt.defaults.items()}
    _run(getattr(torch.optim, torch_opt)([tW, tb], **kwargs), tloss)
    np.testing.assert_allclose(_host(W), tW.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_step_stays_on_the_device():
    """An optimizer step moves nothing to the host (on 'strict' any transfer is counted)."""
    prob = _problem(np.float32)
    W, b, loss = _ours(prob)
    opt = optim.AdamW([W, b], lr=0.1)
    sgd = optim.SGD([tinyllm.tensor(prob["W"], requires_grad=True)], lr=0.1, momentum=0.9)
    sgd.param_groups[0]["params"][0].grad = tinyllm.ones(4, 3)
    loss().backward()
    backend.reset_transfer_stats()
    optim.clip_grad_norm_([W, b], 0.1)
    opt.step()
    sgd.step()
    sgd.step()
    opt.zero_grad(set_to_none=False)
    assert backend.transfer_stats() == {"explicit": 0, "scalar": 0}
    assert W.device == tinyllm.get_device()


# ----------------------------------------------------------------------------- the optimizer API


def test_zero_grad():
    W, b, loss = _ours(_problem())
    opt = optim.SGD([W, b], lr=0.1)
    loss().backward()
    opt.zero_grad(set_to_none=False)
    assert W.grad is not None and not _host(W.grad).any()
    opt.zero_grad()
    assert W.grad is None and b.grad is None


def test_closure_returns_loss():
    W, b, loss = _ours(_problem())
    opt = optim.SGD([W, b], lr=0.1)

    def closure():
        opt.zero_grad()
        out = loss()
        out.backward()
        return out

    first = opt.step(closure).item()
    second = opt.step(closure).item()
    assert second < first


def test_param_group_defaults_and_add_param_group():
    W, b, _ = _ours(_problem())
    opt = optim.AdamW([{"params": [W]}, {"params": b, "weight_decay": 0.0}], lr=0.01)
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["params"] == [b]
    extra = tinyllm.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [extra], "lr": 1.0})
    assert opt.param_groups[2]["betas"] == (0.9, 0.999) and opt.param_groups[2]["lr"] == 1.0
    assert "AdamW" in repr(opt)


@pytest.mark.parametrize("build,err", [
    (lambda W: optim.SGD([], lr=0.1), ValueError),
    (lambda W: optim.SGD(W, lr=0.1), TypeError),  # a bare Tensor, not a list
    (lambda W: optim.SGD([W, W], lr=0.1), ValueError),
    (lambda W: optim.SGD([{"params": [W]}, {"params": [W]}], lr=0.1), ValueError),
    (lambda W: optim.SGD([W * 2], lr=0.1), ValueError),  # not a leaf
    (lambda W: optim.SGD([W.data], lr=0.1), TypeError),  # a raw array
    (lambda W: optim.SGD([W], lr=-1.0), ValueError),
    (lambda W: optim.SGD([W], lr=0.1, nesterov=True), ValueError),
    (lambda W: optim.AdamW([W], betas=(0.9, 1.0)), ValueError),
    (lambda W: optim.AdamW([W], eps=-1.0), ValueError),
    (lambda W: optim.AdamW([W], weight_decay=-0.1), ValueError),
])
def test_bad_arguments(build, err):
    W = tinyllm.zeros(2, 2, requires_grad=True)
    with pytest.raises(err):
        build(W)


# ----------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}], lr=0.05),
], ids=["sgd", "adamw"])
@pytest.mark.parametrize("via_file", [False, True], ids=["memory", "file"])
def test_state_dict_round_trip_continues_identically(make, via_file, tmp_path):
    prob = _problem()
    W, b, loss = _ours(prob)
    opt = make([W, b])
    _run(opt, loss, steps=10)

    # resume: a fresh model with the same weights and a fresh optimizer loaded from the checkpoint
    sd = opt.state_dict()
    W2 = tinyllm.tensor(W.data, requires_grad=True)
    b2 = tinyllm.tensor(b.data, requires_grad=True)
    X, Y = tinyllm.tensor(prob["X"]), tinyllm.tensor(prob["Y"])
    opt2 = make([W2, b2])
    if via_file:
        save({"optim": sd}, tmp_path / "opt.safetensors")
        sd = load(tmp_path / "opt.safetensors")["optim"]
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]

    _run(opt, loss, steps=10)
    _run(opt2, lambda: ((X @ W2 + b2 - Y) ** 2).mean(), steps=10)
    np.testing.assert_array_equal(_host(W2), _host(W))
    np.testing.assert_array_equal(_host(b2), _host(b))
    for p, p2 in [(W, W2), (b, b2)]:
        for k, v in opt.state[p].items():
            v2 = opt2.state[p2][k]
            if backend.is_array(v):
                np.testing.assert_array_equal(tinyllm.to_numpy(v2), tinyllm.to_numpy(v))
            else:
                assert v2 == v


def test_load_state_dict_copies_and_keeps_types():
    W, b, loss = _ours(_problem())
    opt = optim.AdamW([W, b], lr=0.1, betas=(0.8, 0.9))
    _run(opt, loss, steps=2)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1] and set(sd["state"]) == {0, 1}
    assert sd["state"][0]["step"] == 2
    sd["param_groups"][0]["betas"] = [0.8, 0.9]  # as JSON gives it back
    sd["state"] = {str(k): v for k, v in sd["state"].items()}  # string keys are accepted too
    opt2 = optim.AdamW([tinyllm.tensor(W.data, requires_grad=True), tinyllm.tensor(b.data, requires_grad=True)])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9)
    p2 = opt2.param_groups[0]["params"][0]
    assert opt2.state[p2]["exp_avg"] is not opt.state[W]["exp_avg"]
    opt2.state[p2]["exp_avg"][...] = 0
    assert _host(tinyllm.Tensor(opt.state[W]["exp_avg"])).any()


def test_load_state_dict_mismatch():
    W, b, _ = _ours(_problem())
    sd = optim.SGD([W, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD([{"params": [W]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter group 0"):
        optim.SGD([W], lr=0.1).load_state_dict(sd)


# ----------------------------------------------------------------------------- clipping


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.1, 1e6])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) for s in [(4, 3), (3,), (2, 2, 2)]]
    ours = [tinyllm.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ours, theirs, grads):
        p.grad = tinyllm.tensor(g)
        tp.grad = torch.tensor(g)
    total = optim.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, tinyllm.Tensor) and total.shape == () and total.device == tinyllm.get_device()
    assert backend.is_array(total.data)  # a 0-d array, not a NumPy scalar
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-12)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(_host(p.grad), tp.grad.numpy(), rtol=1e-12, atol=0)


def test_clip_grad_norm_worked_example_and_edges():
    a = tinyllm.zeros(2, requires_grad=True)
    c = tinyllm.zeros(1, requires_grad=True)
    a.grad, c.grad = tinyllm.tensor([3.0, 4.0]), tinyllm.tensor([0.0])
    total = optim.clip_grad_norm_([a, c, tinyllm.zeros(3, requires_grad=True)], 1.0)  # a grad-less param is ignored
    assert total.item() == pytest.approx(5.0) and total.dtype == np.float32 and a.grad.dtype == np.float32
    np.testing.assert_allclose(_host(a.grad), [0.6, 0.8], rtol=1e-6)
    assert optim.clip_grad_norm_(a, 10.0).item() == pytest.approx(1.0, rel=1e-5)  # a single Tensor works too
    assert optim.clip_grad_norm_([tinyllm.zeros(2, requires_grad=True)], 1.0).item() == 0.0
    a.grad = tinyllm.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)


# ----------------------------------------------------------------------------- schedules


def test_cosine_with_warmup_values():
    got = [optim.cosine_with_warmup(s, 1.0, 2, 6) for s in range(8)]
    np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5,
                                     0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0, 0.0], atol=1e-15)
    assert optim.cosine_with_warmup(0, 3e-4, 0, 10) == 3e-4  # no warmup: start at max_lr
    assert optim.cosine_with_warmup(10, 3e-4, 2, 10, min_lr=3e-5) == 3e-5
    assert optim.cosine_with_warmup(1000, 3e-4, 2, 10, min_lr=3e-5) == 3e-5
    assert optim.cosine_with_warmup(6, 1.0, 2, 10, min_lr=0.2) == pytest.approx(0.6)  # halfway: the mean
    with pytest.raises(ValueError):
        optim.cosine_with_warmup(-1, 1.0, 2, 10)
    with pytest.raises(ValueError):
        optim.cosine_with_warmup(0, 1.0, 20, 10)


def test_cosine_decay_matches_torch_cosine_annealing(torch):
    """After warmup the curve is torch's CosineAnnealingLR(T_max=S-W, eta_min=min_lr)."""
    W, S, max_lr, min_lr = 3, 13, 0.5, 0.05
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=max_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=S - W, eta_min=min_lr)
    for s in range(W, S + 1):
        assert optim.cosine_with_warmup(s, max_lr, W, S, min_lr) == pytest.approx(sched.get_last_lr()[0], rel=1e-12)
        opt.step()
        sched.step()


def test_warmup_cosine_scheduler():
    W, b, _ = _ours(_problem())
    opt = optim.SGD([{"params": [W], "lr": 1.0}, {"params": [b], "lr": 0.1}], lr=0.5)
    sched = optim.WarmupCosine(opt, warmup_steps=4, max_steps=10, min_lr_ratio=0.1)
    assert sched.get_last_lr() == [0.0, 0.0] and opt.param_groups[0]["lr"] == 0.0
    seen = []
    for _ in range(12):
        sched.step()
        seen.append(sched.get_last_lr())
    for s, lrs in enumerate(seen, start=1):
        for base, lr in zip([1.0, 0.1], lrs):
            assert lr == pytest.approx(optim.cosine_with_warmup(s, base, 4, 10, 0.1 * base), rel=1e-12)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.01)

    # resume: a fresh scheduler over a fresh optimizer picks up where this one stopped
    opt2 = optim.SGD([{"params": [W], "lr": 1.0}, {"params": [b], "lr": 0.1}], lr=0.5)
    sched2 = optim.WarmupCosine(opt2, warmup_steps=4, max_steps=10, min_lr_ratio=0.1)
    sd = sched.state_dict()
    assert sd["last_step"] == 12
    sched2.load_state_dict(sd)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    with pytest.raises(ValueError):
        optim.WarmupCosine(opt, warmup_steps=4, max_steps=10, min_lr_ratio=2.0)
