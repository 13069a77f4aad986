"""Module hooks (tinyllm/nn/hooks.py) against PyTorch's: the same calls with the same arguments, in the same order,
the same effect of a returned value, removable handles; and the model paths that must run them (generation
through the modules, not the raw-array Decoder)."""

import numpy as np
import pytest

import tinyllm
from tinyllm.nn import GPT, GPTConfig, Linear, Module, Sequential
from tinyllm.nn.activation import GatedActivation
from tinyllm.nn.decoding import why_not_decodable


def host(t):
    return None if t is None else tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


def tnp(t):
    return None if t is None else t.detach().numpy()


def both_linears(torch, seed=0):
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    ours = Linear(4, 3)
    ours.load_state_dict({"weight": w, "bias": b})
    theirs = torch.nn.Linear(4, 3)
    theirs.load_state_dict({"weight": torch.tensor(w), "bias": torch.tensor(b)})
    return ours, theirs


def recorder(log, name, conv):
    """A hook that appends (name, its arguments after the module, as host arrays) to log."""
    def hook(module, *args):
        log.append((name, [tuple(conv(t) for t in a) if isinstance(a, tuple) else conv(a) for a in args]))
    return hook


def same_logs(ours, theirs):
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    for (name, a), (_, b) in zip(ours, theirs):
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            x, y = (x, y) if isinstance(x, tuple) else ((x,), (y,))
            assert len(x) == len(y), name
            for u, v in zip(x, y):
                assert (u is None) == (v is None), name
                if u is not None:
                    np.testing.assert_allclose(u, v, atol=1e-5, rtol=1e-5, err_msg=name)


def run_all_four(module, x, conv, requires_grad=True, log=None):
    """Register every kind of hook on module, run forward + backward of sum(y²); the log of calls."""
    log = [] if log is None else log
    handles = [module.register_forward_pre_hook(recorder(log, "pre", conv)),
               module.register_forward_hook(recorder(log, "fwd", conv)),
               module.register_full_backward_pre_hook(recorder(log, "bwd_pre", conv)),
               module.register_full_backward_hook(recorder(log, "bwd", conv))]
    y = module(x)
    (y * y).sum().backward()
    for h in handles:
        h.remove()
    return log


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("requires_grad", [True, False])
def test_every_hook_sees_what_pytorchs_sees(torch, requires_grad):
    ours, theirs = both_linears(torch)
    x = np.random.default_rng(1).normal(size=(2, 5, 4)).astype(np.float32)
    a = run_all_four(ours, tinyllm.tensor(x, requires_grad=requires_grad), host)
    b = run_all_four(theirs, torch.tensor(x, requires_grad=requires_grad), tnp)
    assert [n for n, _ in a] == ["pre", "fwd", "bwd_pre", "bwd"]
    same_logs(a, b)
    assert (a[3][1][0][0] is None) == (not requires_grad)  # grad_input: None for an input without grad


def test_a_module_with_two_inputs_gets_both_input_gradients(torch):
    class TorchSwiGLU(torch.nn.Module):
        def forward(self, g, u):
            return torch.nn.functional.silu(g) * u

    rng = np.random.default_rng(2)
    g, u = (rng.normal(size=(3, 6)).astype(np.float32) for _ in range(2))
    logs = []
    for m, conv, make in ((GatedActivation("swiglu"), host, lambda a: tinyllm.tensor(a, requires_grad=True)),
                          (TorchSwiGLU(), tnp, lambda a: torch.tensor(a, requires_grad=True))):
        log = []
        m.register_full_backward_hook(recorder(log, "bwd", conv))
        gi, ui = make(g), make(u)
        y = m(gi, ui)
        (y * y).sum().backward()
        logs.append(log + [("grads", [conv(gi.grad), conv(ui.grad)])])
    same_logs(*logs)
    assert len(logs[0][0][1][0]) == 2  # grad_input = (dL/dg, dL/du)


def test_returned_values_replace_args_outputs_and_gradients_as_in_pytorch(torch):
    results = []
    for lib, m, conv in ((tinyllm, both_linears(torch)[0], host), (torch, both_linears(torch)[1], tnp)):
        m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
        m.register_forward_hook(lambda mod, args, out: out + 1)
        m.register_full_backward_pre_hook(lambda mod, grad_out: (grad_out[0] * 3,))
        m.register_full_backward_hook(lambda mod, grad_in, grad_out: (grad_in[0] * 0.5,))
        x = lib.tensor(np.ones((2, 4), np.float32), requires_grad=True)
        y = m(x)
        (y * y).sum().backward()
        results.append([conv(y), conv(x.grad), conv(m.weight.grad), conv(m.bias.grad)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_handles_remove_order_prepend_kwargs_and_always_call(torch):
    lin = Linear(2, 2)
    calls = []
    h1 = lin.register_forward_hook(lambda m, a, y: calls.append(1))
    lin.register_forward_hook(lambda m, a, y: calls.append(2))
    lin.register_forward_hook(lambda m, a, y: calls.append(0), prepend=True)
    x = tinyllm.randn(1, 2)
    lin(x)
    assert calls == [0, 1, 2]
    h1.remove()
    h1.remove()  # twice is harmless
    calls.clear()
    lin(x)
    assert calls == [0, 2]
    with lin.register_forward_pre_hook(lambda m, a: calls.append("pre")) as h:
        assert isinstance(h.id, int)
        lin(x)
    lin(x)
    assert calls.count("pre") == 1

    seen = {}

    def with_kwargs(m, args, kwargs, out):
        seen.update(kwargs)

    class Scale(Module):
        def forward(self, x, factor=1.0):
            if factor < 0:
                raise ValueError("negative")
            return x * factor

    s = Scale()
    s.register_forward_hook(with_kwargs, with_kwargs=True)
    s.register_forward_pre_hook(lambda m, args, kw: (args, {"factor": kw["factor"] * 10}), with_kwargs=True)
    assert host(s(tinyllm.tensor([1.0]), factor=2.0)).tolist() == [20.0] and seen == {"factor": 20.0}
    always = []
    s.register_forward_hook(lambda m, args, out: always.append(out), always_call=True)
    with pytest.raises(ValueError, match="negative"):
        s(tinyllm.tensor([1.0]), factor=-1.0)
    assert always == [None]
    with pytest.raises(TypeError, match="hook must be callable"):
        s.register_forward_hook(3)


def test_hooks_inside_a_model_collect_activations_and_gradients_per_layer():
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, context_length=8, n_layer=3, n_head=2, d_model=8))
    acts, grads = {}, {}
    handles = []
    for i, block in enumerate(model.transformer.h):
        handles.append(block.mlp.act.register_forward_hook(lambda m, a, y, i=i: acts.__setitem__(i, host(y))))
        handles.append(block.register_full_backward_hook(
            lambda m, gi, go, i=i: grads.__setitem__(i, (host(gi[0]), host(go[0])))))
    x = np.random.default_rng(0).integers(0, 13, (2, 8))
    _, loss = model(x, x)
    loss.backward()
    assert sorted(acts) == [0, 1, 2] and acts[0].shape == (2, 8, 32)
    assert sorted(grads) == [0, 1, 2] and grads[0][0].shape == (2, 8, 8)
    # the residual stream: the gradient entering block i is the one leaving block i-1 ... (the chain rule)
    np.testing.assert_allclose(grads[1][0], grads[0][1], atol=1e-7)
    # and the parameters' gradients are those of a run without hooks
    with_hooks = {n: host(p.grad).copy() for n, p in model.named_parameters()}
    for h in handles:
        h.remove()
    model.zero_grad()
    model(x, x)[1].backward()
    for n, p in model.named_parameters():
        np.testing.assert_allclose(host(p.grad), with_hooks[n], atol=1e-7, err_msg=n)


def test_generation_runs_the_hooks_and_skips_the_decoder_while_they_are_registered():
    tinyllm.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, context_length=12, n_layer=2, n_head=2, d_model=8)).eval()
    prompt = np.array([[1, 2, 3]])
    plain = model.generate(prompt, 5, temperature=0.0)
    seen = []
    handle = model.transformer.h[1].register_forward_hook(lambda m, a, y: seen.append(y.shape[1]))
    assert "has hooks registered" in why_not_decodable(model) and model.make_decoder() is None
    np.testing.assert_array_equal(model.generate(prompt, 5, temperature=0.0), plain)
    assert seen == [3, 1, 1, 1, 1]  # the prompt, then one token per step, through the modules
    handle.remove()
    assert why_not_decodable(model) == ""


def test_a_hook_on_a_container_wraps_its_children():
    seq = Sequential(Linear(3, 3), Linear(3, 2))
    order = []
    seq.register_forward_hook(lambda m, a, y: order.append("seq"))
    seq[0].register_forward_hook(lambda m, a, y: order.append("first"))
    seq(tinyllm.randn(1, 3))
    assert order == ["first", "seq"]
