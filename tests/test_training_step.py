"""A whole training step of a tiny GPT-style model, end to end.

The pieces are tested one by one elsewhere; here they meet: embeddings, a
pre-norm block (fused QKV, causal attention, GELU MLP, residuals), a tied LM
head, cross-entropy, backward, gradient clipping, AdamW with parameter groups,
a schedule, and a checkpoint. Checked against PyTorch step for step, for dtype
(float32 throughout, nothing upcast), and on the strict device for host
transfers (none).
"""

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
from tinyllm import backend, nn, optim
from tinyllm.autograd import topological_order

V, T, C, NH = 32, 8, 16, 2


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.ln1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.fc1 = nn.Linear(C, 4 * C)
        self.fc2 = nn.Linear(4 * C, C)
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        B, t = idx.shape
        x = self.wte(idx) + self.wpe(tinyllm.arange(t, device=idx.device))  # (B,T,C)
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)  # 3 x (B,T,C)
        q, k, v = (a.reshape(B, t, NH, C // NH).transpose(1, 2) for a in (q, k, v))  # (B,nh,T,hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, t, C)
        x = x + self.proj(y)
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        logits = self.ln_f(x) @ self.wte.weight.T  # tied head: (B,T,C) @ (C,V) -> (B,T,V)
        return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


class TorchGPT:
    """The same model in PyTorch, from the same weights."""

    def __init__(self, torch, state):
        self.torch = torch
        self.p = {k: torch.tensor(v, requires_grad=True) for k, v in state.items()}

    def __call__(self, idx, targets):
        p, Fn = self.p, self.torch.nn.functional
        B, t = idx.shape
        x = Fn.embedding(idx, p["wte.weight"]) + p["wpe.weight"][:t]
        ln = lambda h, n: Fn.layer_norm(h, (C,), p[f"{n}.weight"], p[f"{n}.bias"])  # noqa: E731
        lin = lambda h, n: Fn.linear(h, p[f"{n}.weight"], p[f"{n}.bias"])  # noqa: E731
        q, k, v = lin(ln(x, "ln1"), "qkv").split(C, dim=2)
        q, k, v = (a.reshape(B, t, NH, C // NH).transpose(1, 2) for a in (q, k, v))
        y = Fn.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, t, C)
        x = x + lin(y, "proj")
        x = x + lin(Fn.gelu(lin(ln(x, "ln2"), "fc1")), "fc2")
        logits = ln(x, "ln_f") @ p["wte.weight"].T
        return logits, Fn.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def param_groups(named):
    """Weight decay on matrices only, none on biases, norms and embeddings' positions (as nanoGPT)."""
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    return [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]


def batch(seed=0, B=4):
    """A random batch of token ids; the same seed gives the same batch."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, V, size=(B, T + 1))
    return data[:, :-1], data[:, 1:]


def make_optimizer(model, max_steps=6):
    opt = optim.AdamW(param_groups(list(model.named_parameters())), lr=3e-3, betas=(0.9, 0.95))
    return opt, optim.WarmupCosine(opt, warmup_steps=2, max_steps=max_steps)


def run_steps(model, opt, sched, steps, device, start=0):
    """Steps start..steps-1 of training; the losses."""
    losses = []
    for step in range(start, steps):
        x, y = batch(step % 2)  # two batches in turn: the loss must go down
        idx, targets = tinyllm.tensor(x, device=device), tinyllm.tensor(y, device=device)
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def train(model, steps, device, max_steps=6):
    opt, sched = make_optimizer(model, max_steps)
    return run_steps(model, opt, sched, steps, device), opt, sched


def test_training_matches_pytorch_step_for_step(torch):
    tinyllm.manual_seed(0)
    model = TinyGPT()
    state = {k: tinyllm.to_numpy(v.data).copy() for k, v in model.state_dict().items()}
    ours, _, _ = train(model, steps=6, device=model.wte.weight.device)

    ref = TorchGPT(torch, state)
    named = [(k, ref.p[k]) for k in state]
    opt = torch.optim.AdamW(param_groups(named), lr=3e-3, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, optim.WarmupCosine(
        optim.SGD([tinyllm.zeros(1, requires_grad=True)], lr=1.0), warmup_steps=2, max_steps=6).factor)
    theirs = []
    for step in range(6):
        x, y = batch(step % 2)
        _, loss = ref(torch.tensor(x), torch.tensor(y))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(ref.p.values()), 1.0)
        opt.step()
        sched.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=2e-5)
    for k, v in model.state_dict().items():
        a, b = tinyllm.to_numpy(v.data), ref.p[k].detach().numpy()
        if k == "qkv.bias":
            # subtle: softmax ignores a bias shared by all keys, so the key bias's true gradient is 0
            # and both frameworks feed Adam rounding noise (~1e-9), which Adam scales up to ±lr a step.
            np.testing.assert_allclose(a[C:2 * C], b[C:2 * C], atol=6 * 3e-3)
            a, b = np.delete(a, np.s_[C:2 * C]), np.delete(b, np.s_[C:2 * C])
        np.testing.assert_allclose(a, b, atol=2e-5, err_msg=k)
    assert ours[-1] < ours[0]


def test_float32_everywhere_in_a_training_step():
    tinyllm.manual_seed(0)
    model = TinyGPT()
    x, y = batch()
    logits, loss = model(tinyllm.tensor(x), tinyllm.tensor(y))
    graph = topological_order(loss)
    floats = [t for t in graph if t.dtype.kind == "f"]
    assert len(floats) > 30 and all(t.dtype == np.float32 for t in floats), \
        {type(t.grad_fn).__name__: t.dtype for t in floats if t.dtype != np.float32}
    loss.backward()
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    opt.step()
    for p in model.parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32
    for state in opt.state.values():
        for v in state.values():
            if hasattr(v, "dtype"):
                assert v.dtype == np.float32


def test_a_training_step_on_the_strict_device_makes_no_host_transfers():
    tinyllm.manual_seed(0)
    with tinyllm.use_device("strict"):
        model = TinyGPT()
        opt = optim.AdamW(param_groups(list(model.named_parameters())), lr=1e-3)
        x, y = batch()
        idx, targets = tinyllm.tensor(x), tinyllm.tensor(y)  # host -> device: explicit, allowed
        backend.reset_transfer_stats()
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        assert backend.transfer_stats() == {"explicit": 0, "scalar": 0}
        assert loss.device == "strict" and model.fc1.weight.grad.device == "strict"


def test_the_same_seed_trains_the_same_on_cpu_and_strict():
    """The same numbers up to float32 rounding: the host runs the Numba kernels, strict the reference code."""
    runs = []
    for device in ("cpu", "strict"):
        tinyllm.manual_seed(3)
        with tinyllm.use_device(device):
            runs.append(train(TinyGPT(), steps=3, device=device)[0])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-6)


def test_checkpoint_resume_continues_bit_identically(tmp_path):
    tinyllm.manual_seed(1)
    model = TinyGPT()
    full, _, _ = train(model, steps=6, device=model.wte.weight.device)

    tinyllm.manual_seed(1)
    model = TinyGPT()
    first, opt, sched = train(model, steps=3, device=model.wte.weight.device)
    tinyllm.save({"model": model.state_dict(), "optim": opt.state_dict(), "sched": sched.state_dict()},
                 tmp_path / "ckpt.safetensors")

    ckpt = tinyllm.load(tmp_path / "ckpt.safetensors")
    resumed = TinyGPT()
    resumed.load_state_dict(ckpt["model"])
    opt, sched = make_optimizer(resumed)  # as in torch: build, then load both
    opt.load_state_dict(ckpt["optim"])
    sched.load_state_dict(ckpt["sched"])
    rest = run_steps(resumed, opt, sched, 6, resumed.wte.weight.device, start=3)
    assert first + rest == full


@pytest.mark.parametrize("broken", ["transpose", "scale"])
def test_the_torch_comparison_can_fail(torch, broken):
    # the parity check above is only worth something if a wrong model fails it
    tinyllm.manual_seed(0)
    model = TinyGPT()
    state = {k: tinyllm.to_numpy(v.data).copy() for k, v in model.state_dict().items()}
    if broken == "transpose":
        state["proj.weight"] = state["proj.weight"].T.copy()
    else:
        state["fc1.weight"] = state["fc1.weight"] * 1.001
    x, y = batch()
    _, ours = model(tinyllm.tensor(x), tinyllm.tensor(y))
    _, theirs = TorchGPT(torch, state)(torch.tensor(x), torch.tensor(y))
    assert abs(ours.item() - theirs.item()) > 1e-6
