"""AWQ: the scales leave the float model unchanged, and they cut the quantization error where activations
have outlier channels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.nn import GPT, GPTConfig
from tinyllm.quant import quantize_model
from tinyllm.quant.awq import _fold, _scale_groups, apply_awq, fake_quant, search_clip, search_scale

CFG = GPTConfig(vocab_size=32, context_length=16, n_layer=2, n_head=2, d_model=64)


def _logits(m, ids):
    return backend.to_numpy(m(ids)[0].data)


@pytest.mark.parametrize("activation", ["gelu", "relu", "swiglu"])
def test_folded_scales_leave_the_float_model_unchanged(activation):
    tinyllm.manual_seed(0)
    m = GPT(dataclasses.replace(CFG, activation=activation, d_ff=None)).eval()
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 16))
    before = _logits(m, ids)
    rng = np.random.default_rng(1)
    kinds = []
    for kind, prev, names in _scale_groups(m):
        linears = [m.get_submodule(n) for n in names]
        s = rng.uniform(0.3, 3.0, linears[0].in_features).astype(np.float32)
        _fold(kind, prev, s)
        for lin in linears:
            lin.weight.data = lin.weight.data * backend.asarray(s, device=lin.weight.device)
        kinds.append(kind)
    np.testing.assert_allclose(_logits(m, ids), before, rtol=1e-4, atol=1e-4)
    assert kinds.count("rows") == (0 if activation == "gelu" else CFG.n_layer)  # gelu(x/s) != gelu(x)/s
    assert kinds.count("v_rows") == CFG.n_layer


def test_scales_protect_outlier_channels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 128)).astype(np.float32)
    x[:, [3, 77]] *= 30  # two outlier input channels, as LLM activations have
    w = rng.standard_normal((64, 128)).astype(np.float32) * 0.05
    s, alpha, err, rtn = search_scale(x, [w], "int4", 128)
    assert alpha > 0 and err < 0.7 * rtn
    assert s[3] > 2 * np.median(s) and s[77] > 2 * np.median(s)  # the busy columns get more of the grid
    wc, r = search_clip(x, w, "int4", 128)
    assert ((x @ fake_quant(wc, "int4", 128).T - x @ w.T) ** 2).mean() <= ((x @ fake_quant(w, "int4", 128).T
                                                                            - x @ w.T) ** 2).mean()


@pytest.mark.parametrize("fmt,group", [("int4", 32), ("q4_0", None)])
def test_apply_awq_then_quantize(fmt, group):
    tinyllm.manual_seed(0)
    m = GPT(CFG).eval()
    calib = np.random.default_rng(0).integers(0, CFG.vocab_size, (8, 16))
    report = apply_awq(m, calib, fmt, group, clip=True)
    scaled = [r for r in report if "alpha" in r]
    assert len(scaled) == 3 * CFG.n_layer and all(r["error"] <= r["error_rtn"] for r in scaled)
    assert [r["layers"] for r in report if "clip" in r][0] == ["transformer.h.0.attn.c_proj"]  # q, k unclipped
    quantize_model(m, fmt, group_size=group)
    assert m.generate(calib[:1, :4], 4, temperature=0).shape == (1, 8)
    with pytest.raises(ValueError, match="unknown format"):
        apply_awq(m, calib, "int3")
