"""Quantization-aware training: F.fake_quantize against PyTorch's, and a QAT model stores what it trained as."""

from __future__ import annotations

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm import functional as F
from tinyllm.nn import GPT, GPTConfig
from tinyllm.quant import QuantLinear, intq, quantize_model
from tinyllm.quant.qat import FakeQuantLinear, convert_qat, prepare_qat, qat_finetune


def test_fake_quantize_matches_torch_forward_and_backward(torch):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((6, 16)) * 2).astype(np.float32)
    s = rng.uniform(0.1, 0.5, (6, 1)).astype(np.float32)
    z = rng.integers(0, 16, (6, 1)).astype(np.float32)
    g = rng.standard_normal((6, 16)).astype(np.float32)
    t = torch.tensor(w, requires_grad=True)
    want = torch.fake_quantize_per_channel_affine(t, torch.tensor(s[:, 0]), torch.tensor(z[:, 0]).int(), 0, 0, 15)
    want.backward(torch.tensor(g))
    x = tinyllm.tensor(w, requires_grad=True)
    got = F.fake_quantize(x, tinyllm.tensor(s), tinyllm.tensor(z), 0, 15)
    got.backward(tinyllm.tensor(g))
    np.testing.assert_array_equal(tinyllm.to_numpy(got.data), want.detach().numpy())
    np.testing.assert_array_equal(tinyllm.to_numpy(x.grad.data), t.grad.numpy())
    assert 0 < (t.grad.numpy() == 0).sum() < g.size  # some were clamped (no gradient), most passed straight


def test_fake_quantize_worked_example_and_errors():
    x = tinyllm.tensor(np.float32([0.26, -1.0, 3.0]), requires_grad=True)
    y = F.fake_quantize(x, scale=0.5, zero_point=0, quant_min=-2, quant_max=1)
    y.sum().backward()
    np.testing.assert_array_equal(tinyllm.to_numpy(y.data), [0.5, -1.0, 0.5])
    np.testing.assert_array_equal(tinyllm.to_numpy(x.grad.data), [1, 1, 0])
    with pytest.raises(ValueError, match="scale must be > 0"):
        F.fake_quantize(x, scale=0.0)
    with pytest.raises(ValueError, match="quant_min=3 must be < quant_max=3"):
        F.fake_quantize(x, 1.0, 0, 3, 3)


@pytest.mark.parametrize("fmt", intq.INT_FORMATS)
def test_fake_quant_linear_sees_exactly_what_quantize_model_stores(fmt):
    tinyllm.manual_seed(0)
    lin = tinyllm.nn.Linear(64, 16)
    fq = FakeQuantLinear(lin, fmt, group_size=32)
    x = tinyllm.randn(3, 64)
    stored = QuantLinear.from_linear(lin, fmt, group_size=32)
    w = stored.dequantized_weight()
    want = F.linear(x, tinyllm.tensor(w), lin.bias).data
    np.testing.assert_allclose(backend.to_numpy(fq(x).data), backend.to_numpy(want), rtol=1e-6, atol=1e-6)


def test_qat_trains_through_the_quantizer_and_converts_back():
    tinyllm.manual_seed(0)
    cfg = GPTConfig(vocab_size=8, context_length=16, n_layer=1, n_head=2, d_model=32)
    model = GPT(cfg)
    tokens = np.tile(np.arange(8), 64)  # 0 1 2 ... 7 0 1 ...: the next token is always the successor
    prepare_qat(model, "int4", group_size=32)
    assert sum(isinstance(m, FakeQuantLinear) for m in model.modules()) == 4
    before = [p.data.copy() for p in model.parameters()]
    losses = qat_finetune(model, tokens, steps=40, lr=3e-3, batch_size=8)
    assert losses[-1] < 0.5 * losses[0]
    assert all(not np.array_equal(backend.to_numpy(a), backend.to_numpy(p.data))
               for a, p in zip(before, model.parameters()) if p.ndim == 2)
    ids = tokens[None, :16]
    fake_logits = model(ids)[0].data.copy()
    quantize_model(convert_qat(model), "int4", group_size=32)
    assert not any(isinstance(m, FakeQuantLinear) for m in model.modules())
    np.testing.assert_allclose(backend.to_numpy(model(ids)[0].data), backend.to_numpy(fake_logits), atol=2e-5)
