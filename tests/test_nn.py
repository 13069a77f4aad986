"""tinyllm.nn: Module bookkeeping, the basic layers against torch.nn, initialization.

Runs on the default device (TINYLLM_DEVICE=cpu or strict); every comparison
goes through tinyllm.to_numpy, so a silent host transfer fails on 'strict'.
"""

import math
from collections import OrderedDict

import numpy as np
import pytest

import tinyllm
from tinyllm import backend, nn
from tinyllm.nn import init
from tinyllm.tensor import Tensor

DEVICE = backend.get_device()
OTHER = "cpu" if DEVICE == "strict" else "strict"


def host(x) -> np.ndarray:
    return tinyllm.to_numpy(x.data if isinstance(x, Tensor) else x)


def rand_np(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class MLP(nn.Module):
    def __init__(self, n_in=4, n_hidden=8, n_out=3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu())


class Net(nn.Module):
    """Nested: a child, a Parameter, a buffer, a ModuleList and a Sequential."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.scale = nn.Parameter(tinyllm.ones(4))
        self.register_buffer("pos", tinyllm.arange(6))  # int64, persistent
        self.register_buffer("cache", tinyllm.zeros(3), persistent=False)
        self.blocks = nn.ModuleList([nn.LayerNorm(4), nn.Linear(4, 4, bias=False)])
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2))

    def forward(self, ids):
        x = self.emb(ids) * self.scale
        for block in self.blocks:
            x = block(x)
        return self.head(x)


PARAM_NAMES = ["scale", "emb.weight", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
               "head.1.weight", "head.1.bias"]


# ============================================================================ registration


def test_parameter_is_a_leaf_tensor_that_requires_grad_and_shares_data():
    t = tinyllm.zeros(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(tinyllm.zeros(2), requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(tinyllm.arange(3))
    assert isinstance(p * 2, Tensor) and not isinstance(p * 2, nn.Parameter)


def test_named_parameters_are_dotted_and_in_registration_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == PARAM_NAMES
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.scale"
    assert [n for n, _ in net.named_buffers()] == ["pos", "cache"]
    assert [n for n, _ in net.named_children()] == ["emb", "blocks", "head"]
    assert [n for n, _ in net.named_modules()] == [
        "", "emb", "blocks", "blocks.0", "blocks.1", "head", "head.0", "head.1"]
    assert len(list(net.modules())) == 8
    assert net.get_submodule("blocks.1") is net.blocks[1]
    assert all(p.requires_grad for p in net.parameters())


def test_modulelist_and_sequential_behave_like_lists():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and layers[-1] is layers[2]
    layers.append(nn.LayerNorm(2))
    assert [n for n, _ in layers.named_parameters()][-2:] == ["3.weight", "3.bias"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    with pytest.raises(IndexError, match="out of range"):
        layers[7]
    del layers[0]
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2"]

    seq = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    x = tinyllm.randn(4, 3)
    np.testing.assert_allclose(host(seq(x)), host(seq[1](seq[0](x))), rtol=1e-6)
    named = nn.Sequential(OrderedDict(up=nn.Linear(3, 5), down=nn.Linear(5, 2)))
    assert [n for n, _ in named.named_parameters()][0] == "up.weight"

    heads = nn.ModuleDict({"lm": nn.Linear(2, 3), "value": nn.Linear(2, 1)})
    assert "lm" in heads and [n for n, _ in heads.named_parameters()][2] == "value.weight"


def test_attribute_assignment_rules():
    m = nn.Linear(3, 2)
    with pytest.raises(TypeError, match="Parameter or None"):
        m.weight = tinyllm.zeros(2, 3)  # a plain Tensor can't replace a Parameter
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    m.extra = tinyllm.zeros(1)  # a plain Tensor attribute is not registered
    assert "extra" not in dict(m.named_parameters()) and "extra" not in m.state_dict()
    m.sub = nn.Linear(2, 2)
    m.sub = nn.Parameter(tinyllm.zeros(1))  # re-assigning with another kind replaces the entry
    assert "sub" not in dict(m.named_children()) and "sub" in dict(m.named_parameters())
    del m.sub
    assert not hasattr(m, "sub")
    with pytest.raises(KeyError, match="must not contain a dot"):
        m.register_buffer("a.b", tinyllm.zeros(1))
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tinyllm.zeros(1))  # before super().__init__()

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_tied_weights_are_counted_once_and_get_both_gradients():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(7, 4)
            self.lm_head = nn.Linear(4, 7, bias=False)
            self.lm_head.weight = self.wte.weight

        def forward(self, ids):
            return self.lm_head(self.wte(ids))

    m = Tied()
    assert len(list(m.parameters())) == 1
    assert [n for n, _ in m.named_parameters()] == ["wte.weight"]
    assert list(m.state_dict()) == ["wte.weight", "lm_head.weight"]  # as torch: every name
    assert sum(p.numel() for p in m.parameters()) == 28

    ids = tinyllm.tensor([[1, 2, 1]])
    m(ids).sum().backward()
    w = host(m.wte.weight)
    # d/dW of sum(E[ids] Wᵀ) = (count of id i) · sum_j W[j]  (from the embedding) + sum of E[ids] (from the head)
    expected = np.zeros_like(w)
    for i in (1, 2, 1):
        expected[i] += w.sum(0)
    expected += w[[1, 2, 1]].sum(0)
    np.testing.assert_allclose(host(m.wte.weight.grad), expected, rtol=1e-5, atol=1e-6)

    m.to(OTHER)
    assert m.lm_head.weight is m.wte.weight and m.wte.weight.device == OTHER


# ============================================================================ state dicts


def test_state_dict_holds_params_and_persistent_buffers_detached_and_shared():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    # as torch: a module's own parameters, then its persistent buffers, then its children's
    assert list(sd) == ["scale", "pos"] + PARAM_NAMES[1:]
    for name, p in net.named_parameters():
        assert type(sd[name]) is Tensor and not sd[name].requires_grad
        assert sd[name].data is p.data  # no copy
    assert sd["pos"].dtype == np.int64
    kept = net.state_dict(keep_vars=True)
    assert kept["scale"] is net.scale


def test_load_state_dict_round_trip_copies_in_place():
    a, b = Net(), Net()
    assert not np.allclose(host(a.emb.weight), host(b.emb.weight))
    params_before = [(p, p.data) for p in b.parameters()]
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(host(pa), host(pb), err_msg=name)
    for (p, arr), q in zip(params_before, b.parameters()):
        assert p is q and p.data is arr  # same Parameter, same array: optimizers keep working
    # a copy, not an alias: changing a afterwards leaves b alone
    with tinyllm.no_grad():
        a.scale.fill_(5.0)
    assert host(b.scale)[0] == 1.0


def test_load_state_dict_accepts_host_arrays_and_casts_floats():
    m = nn.Linear(3, 2)
    sd = {"weight": np.arange(6, dtype=np.float64).reshape(2, 3), "bias": np.array([1.0, 2.0])}
    m.load_state_dict(sd)  # host float64 -> the module's device, float32
    assert m.weight.dtype == np.float32 and m.weight.device == DEVICE
    np.testing.assert_array_equal(host(m.weight), sd["weight"])
    m.load_state_dict({k: tinyllm.tensor(v, device=OTHER) for k, v in sd.items()})  # from another device
    assert m.bias.device == DEVICE


def test_load_state_dict_errors_name_missing_unexpected_and_misshaped_keys():
    m = MLP()
    sd = m.state_dict()
    before = host(m.fc1.weight).copy()
    bad = {k: v for k, v in sd.items() if k != "fc2.bias"}
    bad["fc1.weight"] = tinyllm.zeros(4, 8)  # transposed
    bad["fc3.weight"] = tinyllm.zeros(1)
    with pytest.raises(RuntimeError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert "Error(s) in loading state_dict for MLP" in msg
    assert 'Missing key(s) in state_dict: "fc2.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "fc3.weight"' in msg
    assert "size mismatch for fc1.weight" in msg and "(4, 8)" in msg and "(8, 4)" in msg
    assert msg.index("Missing") < msg.index("Unexpected") < msg.index("size mismatch")
    np.testing.assert_array_equal(host(m.fc1.weight), before)  # nothing was copied

    # strict=False tolerates missing/unexpected keys and reports them ...
    ok = {k: v for k, v in sd.items() if k != "fc2.bias"}
    ok["extra"] = tinyllm.zeros(1)
    missing, unexpected = m.load_state_dict(ok, strict=False)
    assert missing == ["fc2.bias"] and unexpected == ["extra"]
    # ... but never a wrong shape or a wrong kind of dtype
    with pytest.raises(RuntimeError, match="size mismatch for fc1.weight"):
        m.load_state_dict(bad, strict=False)
    with pytest.raises(RuntimeError, match="dtype mismatch for fc2.bias"):
        m.load_state_dict({**sd, "fc2.bias": tinyllm.tensor([1, 2, 3])})


# ============================================================================ modes, devices, grads


def test_train_eval_propagate_and_dropout_is_identity_in_eval():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    drop = net.head[0]
    x = tinyllm.randn(64, 32)
    np.testing.assert_array_equal(host(drop(x)), host(x))
    net.train()
    assert all(m.training for m in net.modules())
    y = host(drop(x))
    zeros = (y == 0).mean()
    assert 0.35 < zeros < 0.65
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2 * host(x)[kept], rtol=1e-6)  # scaled by 1/(1-p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def _sgd_step(model, x, target, lr=0.1):
    loss = ((model(x) - target) ** 2).mean()
    model.zero_grad()
    loss.backward()
    with tinyllm.no_grad():
        for p in model.parameters():
            p.data -= lr * p.grad.data
    return loss.item()


@pytest.mark.parametrize("target", ["strict", "cpu"])
def test_to_device_moves_everything_and_training_still_works(target):
    net = Net()
    ids = tinyllm.tensor([[1, 2, 3]])
    net(ids).sum().backward()  # grads exist before the move
    params = list(net.parameters())
    assert net.to(target) is net
    assert list(net.parameters()) == params  # identity kept
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        assert t.device == target, name
    assert all(p.grad.device == target for p in net.parameters())
    assert net.cache.device == target  # non-persistent buffers move too

    mlp = MLP().to(target)
    with tinyllm.use_device(target):
        x, y = tinyllm.randn(16, 4), tinyllm.randn(16, 3)
    losses = [_sgd_step(mlp, x, y) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert all(p.device == target and p.grad.device == target for p in mlp.parameters())
    with pytest.raises(ValueError, match="device"):
        mlp.to("gpu")


def test_to_dtype_casts_floating_params_and_buffers_only():
    net = Net()
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.pos.dtype == np.int64 and net.cache.dtype == np.float64
    out = net(tinyllm.tensor([[1, 2]]))
    assert out.dtype == np.float64
    net.to(dtype="float32")
    assert all(p.dtype == np.float32 for p in net.parameters())
    with pytest.raises(TypeError, match="floating"):
        net.to(np.int64)


def test_zero_grad():
    m = MLP()
    m(tinyllm.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not host(p.grad).any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_deepcopy_makes_an_independent_module():
    import copy

    a = MLP()
    b = copy.deepcopy(a)
    assert [n for n, _ in b.named_parameters()] == [n for n, _ in a.named_parameters()]
    assert all(type(p) is nn.Parameter and p.device == DEVICE for p in b.parameters())
    with tinyllm.no_grad():
        b.fc1.weight.fill_(0.0)
    assert host(a.fc1.weight).any()


def test_apply_requires_grad_and_children():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Net" and seen.count("Linear") == 2  # children first, self last

    def gpt_init(m):
        if isinstance(m, nn.Linear):
            init.normal_(m.weight, std=0.02)

    net.apply(gpt_init)
    assert host(net.head[1].weight).std() < 0.1
    net.emb.requires_grad_(False)
    assert not net.emb.weight.requires_grad and net.scale.requires_grad


# ============================================================================ layers vs torch.nn


def _load_from_torch(ours, theirs):
    ours.load_state_dict({k: tinyllm.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})


def _check_forward_backward(torch, ours, theirs, x_np, rtol=1e-5, atol=1e-6, integer_input=False):
    _load_from_torch(ours, theirs)
    if integer_input:
        x, tx = tinyllm.tensor(x_np), torch.tensor(x_np)
    else:
        x, tx = tinyllm.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    out, tout = ours(x), theirs(tx)
    assert out.dtype == np.float32 and out.device == DEVICE
    np.testing.assert_allclose(host(out), tout.detach().numpy(), rtol=rtol, atol=atol)
    g = rand_np(*tout.shape, seed=1)
    (out * tinyllm.tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    if not integer_input:
        np.testing.assert_allclose(host(x.grad), tx.grad.numpy(), rtol=rtol, atol=atol)
    tparams = dict(theirs.named_parameters())
    assert list(tparams) == [n for n, _ in ours.named_parameters()]
    for name, p in ours.named_parameters():
        assert p.grad.dtype == np.float32 and p.grad.device == DEVICE
        np.testing.assert_allclose(host(p.grad), tparams[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(torch, bias):
    _check_forward_backward(torch, nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), rand_np(2, 4, 5))


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_matches_torch(torch, padding_idx):
    ids = np.array([[1, 2, 1, 9], [0, 0, 0, 3]], dtype=np.int64)  # repeats: gradients accumulate
    ours, theirs = nn.Embedding(10, 6, padding_idx), torch.nn.Embedding(10, 6, padding_idx)
    if padding_idx is not None:
        assert not host(ours.weight)[padding_idx].any()  # the padding row starts at zero
    _check_forward_backward(torch, ours, theirs, ids, integer_input=True)


@pytest.mark.parametrize("kwargs", [{}, {"bias": False}, {"elementwise_affine": False}, {"eps": 1e-3}])
def test_layernorm_matches_torch(torch, kwargs):
    ours, theirs = nn.LayerNorm(8, **kwargs), torch.nn.LayerNorm(8, **kwargs)
    if ours.weight is not None:  # non-trivial affine parameters
        theirs.weight.data.normal_()
        if theirs.bias is not None:
            theirs.bias.data.normal_()
    _check_forward_backward(torch, ours, theirs, 3 * rand_np(2, 3, 8) + 1, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"eps": 1e-6}, {"elementwise_affine": False}])
def test_rmsnorm_matches_torch(torch, kwargs):
    ours, theirs = nn.RMSNorm(8, **kwargs), torch.nn.RMSNorm(8, **kwargs)
    if ours.weight is not None:
        theirs.weight.data.normal_()
    _check_forward_backward(torch, ours, theirs, rand_np(2, 3, 8), rtol=1e-4, atol=1e-5)


def test_normalized_shape_over_two_dims(torch):
    ours, theirs = nn.LayerNorm((3, 4)), torch.nn.LayerNorm((3, 4))
    theirs.weight.data.normal_()
    _check_forward_backward(torch, ours, theirs, rand_np(2, 3, 4), rtol=1e-4, atol=1e-5)


def test_repr_matches_torch(torch):
    def build(lib):
        class Model(lib.Module):
            def __init__(self):
                super().__init__()
                self.wte = lib.Embedding(10, 4)
                self.h = lib.ModuleList([lib.Sequential(lib.LayerNorm(4), lib.Linear(4, 4)) for _ in range(3)]
                                        + [lib.Linear(4, 2, bias=False)])
                self.ln_f = lib.RMSNorm(4)

        return Model()

    assert repr(build(nn)) == repr(build(torch.nn))
    assert repr(nn.Dropout(0.1)) == repr(torch.nn.Dropout(0.1))
    assert repr(nn.Embedding(5, 2, padding_idx=0)) == repr(torch.nn.Embedding(5, 2, padding_idx=0))
    assert repr(nn.ModuleList()) == "ModuleList()"
    assert "(0-2): 3 x Sequential(" in repr(build(nn))


# ============================================================================ initialization


def test_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    m = nn.Linear(256, 512)
    bound = 1 / math.sqrt(256)
    w, b = host(m.weight), host(m.bias)
    assert m.weight.shape == (512, 256) and m.weight.dtype == np.float32 and m.weight.device == DEVICE
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert w.var() == pytest.approx(bound**2 / 3, rel=0.02)  # U(-b, b) has variance b²/3
    assert np.abs(b).max() <= bound and b.std() > 0.4 * bound


def test_embedding_layernorm_rmsnorm_init():
    e = host(nn.Embedding(1000, 64).weight)
    assert abs(e.mean()) < 0.01 and e.std() == pytest.approx(1.0, rel=0.02)
    ln = nn.LayerNorm(8)
    assert (host(ln.weight) == 1).all() and (host(ln.bias) == 0).all()
    assert nn.LayerNorm(8, bias=False).bias is None
    assert nn.LayerNorm(8, elementwise_affine=False).weight is None
    assert (host(nn.RMSNorm(8).weight) == 1).all() and nn.RMSNorm(8).eps is None


def test_init_is_seeded_and_the_same_on_cpu_and_strict():
    tinyllm.manual_seed(123)
    a = host(nn.Linear(4, 4).weight).copy()
    tinyllm.manual_seed(123)
    b = host(nn.Linear(4, 4).weight)
    np.testing.assert_array_equal(a, b)
    tinyllm.manual_seed(7)
    cpu = host(nn.Embedding(5, 3, device="cpu").weight)
    tinyllm.manual_seed(7)
    strict = nn.Embedding(5, 3, device="strict").weight
    assert strict.device == "strict"
    np.testing.assert_array_equal(cpu, host(strict))


def test_layers_take_device_and_dtype():
    m = nn.Linear(3, 2, device=OTHER, dtype=np.float64)
    assert m.weight.device == OTHER and m.weight.dtype == np.float64 and m.bias.dtype == np.float64
    assert nn.LayerNorm(4, dtype="float64").weight.dtype == np.float64
    with tinyllm.use_device(OTHER):
        assert nn.Embedding(3, 2).weight.device == OTHER


def test_init_functions():
    w = nn.Parameter(tinyllm.empty(300, 200))
    assert init.xavier_uniform_(w) is w
    assert np.abs(host(w)).max() <= math.sqrt(6 / 500)
    init.kaiming_normal_(w, nonlinearity="relu")
    assert host(w).std() == pytest.approx(math.sqrt(2 / 200), rel=0.03)
    init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(host(w)).max() <= 0.5 and host(w).std() > 0.2
    init.constant_(w, 0.5)
    assert (host(w) == 0.5).all() and w.dtype == np.float32 and w.requires_grad
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(nn.Parameter(tinyllm.empty(3)))


# ============================================================================ a whole training step


def test_mlp_trains_with_hand_written_sgd_and_stays_float32():
    tinyllm.manual_seed(0)
    model = MLP(n_in=4, n_hidden=16, n_out=1)
    x = tinyllm.randn(32, 4)
    y = (x * tinyllm.tensor([1.0, -2.0, 0.5, 3.0])).sum(dim=1, keepdim=True)  # a linear target
    losses = []
    for _ in range(20):
        h = model.fc1(x)
        out = model.fc2(h.relu())
        loss = ((out - y) ** 2).mean()
        for t in (h, out, loss):
            assert t.dtype == np.float32 and t.device == DEVICE
        model.zero_grad()
        loss.backward()
        with tinyllm.no_grad():
            for p in model.parameters():
                assert p.grad.dtype == np.float32 and p.grad.shape == p.shape
                p.data -= 0.05 * p.grad.data
        assert all(p.dtype == np.float32 for p in model.parameters())
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["GELU", "ReLU", "SiLU", "Tanh"])
def test_activation_modules_match_torch(name, torch):
    x_host = np.linspace(-3, 3, 25).reshape(5, 5).astype(np.float64)
    ours = getattr(nn, name)()(tinyllm.tensor(x_host))
    theirs = getattr(torch.nn, name)()(torch.tensor(x_host))
    np.testing.assert_allclose(tinyllm.to_numpy(ours.data), theirs.numpy(), rtol=1e-12, atol=1e-12)
    assert repr(nn.GELU(approximate="tanh")) == repr(torch.nn.GELU(approximate="tanh"))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU(approximate="fast")
