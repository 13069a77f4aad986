"""AWQ export: the int32 packing against AutoAWQ's own WQLinear_GEMM (pack and run), and the folder it writes.

The oracle tests need autoawq (pip install --no-deps autoawq; its layers import accelerate: pip install
accelerate). AutoAWQ's package __init__ imports its model zoo, which no longer imports with current
transformers (AutoAWQ is deprecated upstream), so the tests load its layer modules under a bare `awq`
namespace package, without that __init__.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import types

import numpy as np
import pytest
from safetensors.numpy import load_file

import tinyllm
from tinyllm import backend
from tinyllm.interop.awq import AWQ_ORDER, dequantize_awq, export_awq, pack_awq, pack_columns, unpack_columns
from tinyllm.nn import GPT, GPTConfig
from tinyllm.quant import QuantLinear, intq
from tinyllm.tokenizer import CharTokenizer


def test_pack_order_by_hand():
    v = np.arange(8, dtype=np.uint8)[None]  # q0..q7 = 0..7
    p = pack_columns(v)
    assert p.dtype == np.int32 and p.shape == (1, 1)
    nibbles = [(int(p.view(np.uint32)[0, 0]) >> (4 * i)) & 15 for i in range(8)]
    assert nibbles == list(AWQ_ORDER)  # bits 4i..4i+3 hold q[AWQ_ORDER[i]]: 0, 2, 4, 6, 1, 3, 5, 7
    w = np.random.default_rng(0).integers(0, 16, (5, 24)).astype(np.uint8)
    np.testing.assert_array_equal(unpack_columns(pack_columns(w)), w)


@pytest.fixture(scope="module")
def wqlinear():
    pytest.importorskip("torch")
    spec = importlib.util.find_spec("awq")
    if spec is None or importlib.util.find_spec("accelerate") is None:
        pytest.skip("AutoAWQ's layers are the oracle: pip install --no-deps autoawq && pip install accelerate")
    saved = sys.modules.get("awq")
    pkg = types.ModuleType("awq")
    pkg.__path__ = [os.path.dirname(spec.origin)]  # its subpackages, without awq/__init__.py's model zoo
    sys.modules["awq"] = pkg
    try:
        from awq.modules.linear.gemm import WQLinear_GEMM
    finally:
        if saved is not None:
            sys.modules["awq"] = saved
    return WQLinear_GEMM


def test_packing_equals_autoawq_and_its_layer_computes_ours(wqlinear, torch):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 128)).astype(np.float32)  # AutoAWQ packs whole groups of 32 outputs
    iw = intq.quantize_int(w, "int4", 32)
    ours = pack_awq(iw)
    lin = torch.nn.Linear(128, 64, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(intq.dequantize_int(iw)))  # what AutoAWQ's pseudo-quantizer leaves in W
    ref = wqlinear.from_linear(lin, 4, 32, scales=torch.tensor(iw.scale.T.copy()),
                               zeros=torch.tensor(iw.zero.T.astype(np.float32)))
    np.testing.assert_array_equal(ref.qweight.numpy(), ours["qweight"])
    np.testing.assert_array_equal(ref.qzeros.numpy(), ours["qzeros"])
    np.testing.assert_array_equal(ref.scales.numpy(), ours["scales"])
    # AutoAWQ's layer on this CPU (its reference path: unpack, dequantize, float16 matmul) against QuantLinear
    x = rng.standard_normal((3, 128)).astype(np.float32)
    with backend.use_device("cpu"):  # the comparison is on the host, where AutoAWQ runs
        tl = tinyllm.nn.Linear(128, 64)
        tl.weight.data, tl.bias.data = lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()
        ours_y = QuantLinear.from_linear(tl, "int4", group_size=32)(tinyllm.tensor(x)).data
    with torch.no_grad():
        theirs = ref(torch.tensor(x)).float().numpy().reshape(3, 64)
    np.testing.assert_allclose(theirs, ours_y, rtol=0, atol=0.05)
    np.testing.assert_allclose(dequantize_awq(ours, 32), intq.dequantize_int(iw), rtol=1e-3, atol=1e-3)


def test_export_awq_writes_a_llama_folder(tmp_path):
    tok = CharTokenizer.from_text("abcdefgh ijklmnop\n")
    tinyllm.manual_seed(0)
    cfg = GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layer=2, n_head=4, n_kv_head=2, d_model=64,
                    pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False)
    m = GPT(cfg)
    out = export_awq(m, tok, tmp_path / "awq", group_size=32)
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"] == {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": True,
                                             "version": "gemm", "modules_to_not_convert": None}
    t = load_file(out / "model.safetensors")
    layers = [k[:-len(".qweight")] for k in t if k.endswith(".qweight")]
    assert len(layers) == 7 * cfg.n_layer and not any(k.endswith("_proj.weight") for k in t)
    k = {n: t[f"model.layers.1.self_attn.k_proj.{n}"] for n in ("qweight", "qzeros", "scales")}
    assert k["qweight"].shape == (64, 32 // 8) and k["qweight"].dtype == np.int32  # (in, out/8): 2 KV heads of 16
    assert k["scales"].dtype == np.float16
    w = backend.to_numpy(m.transformer.h[1].attn.c_attn.weight.data)[64:96]  # the k rows
    np.testing.assert_allclose(dequantize_awq(k, 32), intq.dequantize_int(intq.quantize_int(w, "int4", 32)),
                               rtol=2e-3, atol=2e-3)
    with pytest.raises(ValueError, match="LLaMA-style"):
        export_awq(GPT(dataclasses.replace(cfg, pos_encoding="learned", norm="layernorm", activation="gelu_tanh",
                                           bias=True, n_kv_head=None, d_ff=None)), tok, tmp_path / "x")


def test_export_awq_command(tmp_path, capsys):
    from tinyllm.cli import main
    from tinyllm.tokenizer.files import save_tokenizer

    tok = CharTokenizer.from_text("abcdefgh ijklmnop\n")
    cfg = GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=64,
                    pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False)
    GPT(cfg).save_pretrained(tmp_path / "run")
    save_tokenizer(tok, tmp_path / "run")
    (tmp_path / "calib.txt").write_text("abc defg hij klmnop\n" * 8)
    argv = ["export", "awq", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "awq"), "--group-size", "32"]
    assert main(argv + ["--calib", str(tmp_path / "calib.txt")]) == 0 and "AWQ scales" in capsys.readouterr().out
    assert (tmp_path / "awq" / "config.json").is_file()
    assert main(argv) == 2 and "new or empty folder" in capsys.readouterr().err
