"""Gated MLPs (swiglu, geglu) and post-norm blocks, against PyTorch: the fused gate op (values, gradients,
kernel against reference), LLaMA's d_ff rule, the MLP and a post-norm Block (values and gradients of every
parameter), and the raw-array Decoder for both (the whole-model parity is in tests/test_gpt.py, PARITY)."""

import numpy as np
import pytest

import tinyllm
from tinyllm import functional as F
from tinyllm.functional import kernels
from tinyllm.functional.gated import _gated_reference, gated_kernel
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.block import Block
from tinyllm.nn.config import default_d_ff
from tinyllm.nn.mlp import MLP


def host(t):
    return tinyllm.to_numpy(t.data if isinstance(t, tinyllm.Tensor) else t)


TORCH_ACT = {"swiglu": "silu", "geglu": "gelu"}


@pytest.mark.parametrize("name", ["swiglu", "geglu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gate_values_and_gradients_equal_pytorch(torch, name, dtype):
    rng = np.random.default_rng(0)
    g, u, go = (rng.normal(0, 3, (4, 7, 33)).astype(dtype) for _ in range(3))
    g[0, 0, :4] = [-100.0, -30.0, 0.0, 30.0]  # the tails: no overflow, no NaN
    tg, tu = torch.tensor(g, requires_grad=True), torch.tensor(u, requires_grad=True)
    want = getattr(torch.nn.functional, TORCH_ACT[name])(tg) * tu
    want.backward(torch.tensor(go))
    a, b = tinyllm.tensor(g, requires_grad=True), tinyllm.tensor(u, requires_grad=True)
    y = getattr(F, name)(a, b)
    y.backward(tinyllm.tensor(go))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(host(y), want.detach().numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(host(a.grad), tg.grad.numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(host(b.grad), tu.grad.numpy(), atol=tol, rtol=tol)


@pytest.mark.parametrize("name", ["swiglu", "geglu"])
def test_gate_kernel_equals_its_reference(name):
    rng = np.random.default_rng(1)
    g, u, go = (rng.normal(0, 4, (300, 700)).astype(np.float32) for _ in range(3))  # big enough to split
    np.testing.assert_allclose(gated_kernel(name, g, u), _gated_reference(name, g, u), atol=2e-5, rtol=1e-5)
    for fast, ref in zip(gated_kernel(name, g, u, go), _gated_reference(name, g, u, go)):
        np.testing.assert_allclose(fast, ref, atol=5e-5, rtol=1e-5)


def test_gate_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="same shape"):
        F.swiglu(tinyllm.randn(2, 3), tinyllm.randn(2, 4))
    with pytest.raises(TypeError, match="one floating dtype"):
        F.geglu(tinyllm.tensor([1, 2]), tinyllm.tensor([1, 2]))
    with pytest.raises(ValueError, match="unknown gated activation 'reglu'"):
        F.gated.gated("reglu", tinyllm.randn(2), tinyllm.randn(2))


def test_gated_d_ff_is_llamas_rule_at_a_multiple_of_64():
    # 2/3 · 4·d_model, rounded up to a multiple of 64: LLaMA-7B's rule (there a multiple of 256: 11008 at 4096)
    assert [default_d_ff(d, "swiglu") for d in (64, 128, 256, 768)] == [192, 384, 704, 2048]
    assert default_d_ff(4096, "swiglu") == 10944  # 10922 rounded up; LLaMA-7B's multiple of 256 gives 11008
    assert default_d_ff(128, "gelu") == 512 and GPTConfig(8, 8, 1, 1, 128, activation="geglu").d_ff == 384
    assert GPTConfig(8, 8, 1, 1, 128, activation="swiglu", d_ff=100).d_ff == 100  # given: kept
    mlp = MLP(GPTConfig(8, 8, 1, 1, 128, activation="swiglu", bias=False))
    assert sum(p.numel() for p in mlp.parameters()) == 3 * 128 * 384  # ≈ 8·C² like the 4C two-matrix MLP (8·C²)


def _config(**kw):
    return GPTConfig(**{**dict(vocab_size=11, context_length=12, n_layer=2, n_head=2, d_model=16), **kw})


def _load(ours, theirs, torch, rng):
    """Random weights (norm gains near 1) into both modules, same names."""
    state = {n: rng.normal(1.0 if "ln_" in n else 0.0, 0.3, p.shape).astype(np.float32)
             for n, p in ours.named_parameters()}
    ours.load_state_dict(state)
    theirs.load_state_dict({n: torch.tensor(v) for n, v in state.items()})


def _same_values_and_grads(ours, theirs, torch, x):
    xt = torch.tensor(x, requires_grad=True)
    xo = tinyllm.tensor(x, requires_grad=True)
    want, got = theirs(xt), ours(xo)
    np.testing.assert_allclose(host(got), want.detach().numpy(), atol=2e-5, rtol=1e-5)
    w = np.random.default_rng(9).normal(size=x.shape).astype(np.float32)  # a random linear loss
    (want * torch.tensor(w)).sum().backward()
    (got * tinyllm.tensor(w)).sum().backward()
    np.testing.assert_allclose(host(xo.grad), xt.grad.numpy(), atol=2e-5, rtol=1e-4)
    t_grads = dict(theirs.named_parameters())
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), t_grads[n].grad.numpy(), atol=2e-5, rtol=1e-4, err_msg=n)


@pytest.mark.parametrize("activation", ["swiglu", "geglu"])
@pytest.mark.parametrize("bias", [True, False])
def test_gated_mlp_equals_pytorch(torch, activation, bias):
    import torch_gpt

    cfg = _config(activation=activation, bias=bias)
    ours, theirs = MLP(cfg), torch_gpt.MLP(torch_gpt.resolve_config(cfg))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    rng = np.random.default_rng(0)
    _load(ours, theirs, torch, rng)
    _same_values_and_grads(ours, theirs, torch, rng.normal(0, 1, (2, 5, 16)).astype(np.float32))


def test_the_gated_comparison_can_fail(torch):
    # gate and up swapped: silu(up) * gate differs from silu(gate) * up, so the roles are checked
    import torch_gpt

    cfg = _config(activation="swiglu")
    ours, theirs = MLP(cfg), torch_gpt.MLP(torch_gpt.resolve_config(cfg))
    _load(ours, theirs, torch, np.random.default_rng(0))
    ours.c_gate, ours.c_fc = ours.c_fc, ours.c_gate
    x = np.random.default_rng(1).normal(size=(1, 3, 16)).astype(np.float32)
    assert np.abs(host(ours(tinyllm.tensor(x))) - theirs(torch.tensor(x)).detach().numpy()).max() > 1e-3


@pytest.mark.parametrize("kw", [dict(norm_position="post"), dict(norm_position="post", norm="rmsnorm",
                                                                   activation="swiglu", bias=False)])
def test_post_norm_block_equals_pytorch(torch, kw):
    import torch_gpt

    cfg = _config(**kw)
    ours, theirs = Block(cfg), torch_gpt.Block(torch_gpt.resolve_config(cfg))
    rng = np.random.default_rng(3)
    _load(ours, theirs, torch, rng)
    _same_values_and_grads(ours, theirs, torch, rng.normal(0, 1, (2, 6, 16)).astype(np.float32))


def test_post_norm_model_has_no_final_norm_and_its_blocks_end_normalized():
    model = GPT(_config(norm_position="post", n_layer=3))
    assert "ln_f" not in model.transformer and "transformer.ln_f.weight" not in model.state_dict()
    out = []
    model.transformer.h[2].register_forward_hook(lambda m, args, y: out.append(host(y)))
    model(np.arange(10)[None] % 11)
    rms = np.sqrt((out[0] ** 2).mean(-1))
    np.testing.assert_allclose(rms, 1.0, atol=1e-3)  # LayerNorm with gain 1, bias 0: unit RMS per token


@pytest.mark.parametrize("kw", [dict(activation="swiglu", norm="rmsnorm", bias=False, pos_encoding="rope"),
                                dict(activation="geglu", norm_position="post"),
                                dict(norm_position="post", norm="rmsnorm", n_kv_head=1)])
def test_decoder_steps_equal_the_modules_for_gated_and_post_norm(kw):
    tinyllm.manual_seed(0)
    model = GPT(_config(**kw)).eval()
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = tinyllm.tensor(rng.normal(0, 0.4, p.shape).astype(np.float32)).data
    x = rng.integers(0, 11, (2, 12))
    full = host(model(x)[0])
    for disabled in (False, True):
        dec = model.make_decoder(batch_size=2)
        assert dec is not None
        steps = [dec.prefill(x[:, :3])]
        if disabled:
            with kernels.disabled():
                steps += [dec.step(x[:, t]) for t in range(3, 12)]
        else:
            steps += [dec.step(x[:, t]) for t in range(3, 12)]
        np.testing.assert_allclose(np.stack(steps, axis=1), full[:, 2:], atol=1e-5, rtol=0)
