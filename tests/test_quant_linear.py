"""QuantLinear and quantize_model: a GPT with quantized blocks computes what its dequantized weights say,
generates with and without its KV cache alike, moves between devices, and samples from the command line."""

from __future__ import annotations

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm import functional as F
from tinyllm.cli import main
from tinyllm.nn import GPT, GPTConfig
from tinyllm.quant import METHODS, QuantLinear, model_nbytes, quantize_model
from tinyllm.quant.qmatmul import quantize_activations_reference

DEVICE = tinyllm.get_device()
CFG = GPTConfig(vocab_size=40, context_length=32, n_layer=2, n_head=2, d_model=64)


def _model(method=None, **kw):
    tinyllm.manual_seed(0)
    m = GPT(CFG).eval()
    return quantize_model(m, method, **kw) if method else m


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rows", [3, 40])  # the block kernels (a few rows), tiles through BLAS (many)
def test_quant_linear_is_linear_with_its_dequantized_weight(method, rows):
    lin = tinyllm.nn.Linear(64, 96)
    q = QuantLinear.from_linear(lin, method, group_size=32)
    x = tinyllm.randn(rows, 64)
    w = q.dequantized_weight()
    xr = x.data
    if method in ("q8_0", "q5_0", "q4_0"):  # ggml multiplies by the activations' Q8_0 blocks
        xr = quantize_activations_reference(xr)
    want = F.linear(tinyllm.tensor(xr), tinyllm.tensor(w), lin.bias).data
    got = q(x).data
    scale = np.abs(backend.to_numpy(xr)) @ np.abs(backend.to_numpy(w)).T + 1
    assert np.all(np.abs(backend.to_numpy(got - want)) <= 3e-6 * scale)
    assert q.nbytes < (64 * 96 * 4) // (1.9 if method == "f16" else 3.5)


def test_gradient_flows_to_the_input_and_the_bias():
    lin = tinyllm.nn.Linear(64, 32)
    q = QuantLinear.from_linear(lin, "int4", group_size=32)
    x = tinyllm.randn(5, 64, requires_grad=True)
    q(x).sum().backward()
    w = q.dequantized_weight()
    np.testing.assert_allclose(backend.to_numpy(x.grad.data), np.broadcast_to(backend.to_numpy(w).sum(0), (5, 64)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(lin.bias.grad.data), np.full(32, 5.0))


@pytest.mark.parametrize("method", ["q8_0", "q4_0", "int4"])
def test_a_quantized_model_generates_with_its_kv_cache(method):
    m = _model(method, group_size=32)
    assert sum(isinstance(x, QuantLinear) for x in m.modules()) == 4 * CFG.n_layer
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 5))
    cached = m.generate(ids, 12, temperature=0)
    assert np.array_equal(cached, m.generate(ids, 12, temperature=0, use_cache=False))
    ref = _model()
    logits, _ = m(ids)
    close = np.abs(backend.to_numpy(logits.data) - backend.to_numpy(ref(ids)[0].data)).max()
    assert 0 < close < {"q8_0": 0.05, "q4_0": 0.5, "int4": 0.5}[method]  # quantized, and still the same model


def test_sizes_and_skip():
    full = model_nbytes(_model())
    q = model_nbytes(_model("q4_0", skip=["transformer.h.1.mlp.c_proj"]))
    blocks = CFG.n_layer * 12 * CFG.d_model ** 2 * 4  # c_attn 3C², c_proj C², c_fc and mlp.c_proj 4C² each
    assert full["quantized"] == 0 and q["quantized"] == (blocks - 4 * CFG.d_model ** 2 * 4) * 18 // 128
    assert q["float"] == full["float"] - blocks + 4 * CFG.d_model ** 2 * 4


def test_quantize_model_errors_say_what_to_do():
    with pytest.raises(ValueError, match="unknown method 'q3'"):
        _model("q3")
    with pytest.raises(ValueError, match="skip names layers the model does not have"):
        _model("q8_0", skip=["transformer.h.9.attn.c_attn"])
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(_model("q8_0"), "q4_0")
    with pytest.raises(ValueError, match=r"transformer.h.0.attn.c_attn \(192, 64\): int4: the group size"):
        _model("int4", group_size=128)


def test_state_moves_with_the_model():
    m = _model("q4_0")
    if DEVICE == "cpu":
        m.to("strict")
        assert m.transformer.h[0].attn.c_attn.weight_blocks.device == "strict"
    ids = np.arange(6)[None] % CFG.vocab_size
    assert m.generate(ids, 4, temperature=0).shape == (1, 10)
    assert "transformer.h.0.mlp.c_fc.weight_blocks" in m.state_dict()


def test_sample_command_quantizes(tmp_path, capsys):
    from tinyllm.tokenizer import CharTokenizer
    from tinyllm.tokenizer.files import save_tokenizer

    tok = CharTokenizer.from_text("abcdefghij klmnopqrstuvwxyz.\n")
    tinyllm.manual_seed(0)
    with backend.use_device("cpu"):
        GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=32)
            ).save_pretrained(tmp_path)
    save_tokenizer(tok, tmp_path)
    assert main(["sample", "--ckpt", str(tmp_path), "--prompt", "abc", "--max-new-tokens", "5", "--quantize", "q8_0",
                 "--seed", "0"]) == 0
    assert capsys.readouterr().out.startswith("abc")
    assert main(["sample", "--ckpt", str(tmp_path), "--quantize", "q4_k"]) == 2
    assert "unknown method 'q4_k'" in capsys.readouterr().err
