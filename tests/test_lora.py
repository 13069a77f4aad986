"""LoRA (tinyllm/nn/lora.py): a frozen base, low-rank adapters that train, merge, unmerge, save and load."""

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.nn import GPT, GPTConfig
from tinyllm.nn.lora import (
    LoRALinear,
    apply_lora,
    load_adapters,
    lora_layers,
    merge_lora,
    merged_state_dict,
    parameter_counts,
    save_adapters,
    unmerge_lora,
)

CFG = GPTConfig(vocab_size=20, context_length=12, n_layer=2, n_head=2, d_model=16, dropout=0.0, bias=True)


def _model(seed=0, **kw):
    tinyllm.manual_seed(seed)
    return GPT(GPTConfig(**{**CFG.to_dict(), **kw}))


def _randomize_adapters(model, seed=1):
    rng = np.random.default_rng(seed)
    for _, m in lora_layers(model):
        m.lora_B.data[...] = backend.asarray(rng.normal(0, 0.3, m.lora_B.shape).astype(np.float32),
                                             device=m.lora_B.device)


def _ids(B=2, T=10, seed=0):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, size=(B, T))


def _logits(model, ids):
    model.eval()
    with tinyllm.no_grad():
        return tinyllm.to_numpy(model(ids)[0].data)


def test_a_fresh_adapter_changes_nothing_and_only_adapters_train():
    model = _model()
    before = _logits(model, _ids())
    apply_lora(model, r=4, alpha=8, targets=("c_attn", "mlp.c_proj"))
    names = [n for n, _ in lora_layers(model)]
    assert names == ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj",
                     "transformer.h.1.attn.c_attn", "transformer.h.1.mlp.c_proj"]
    np.testing.assert_array_equal(_logits(model, _ids()), before)  # B = 0: exactly the base
    trainable, total = parameter_counts(model)
    C, qkv, ff = 16, 48, 64
    assert trainable == 2 * (4 * (C + qkv) + 4 * (ff + C))  # r·(in + out) per adapted matrix
    assert total == GPT(CFG).num_parameters() + trainable
    # one step: gradients reach the adapters only
    model.train()
    _, loss = model(_ids(), _ids(seed=1))
    loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == ("lora_" in name), name


def test_merge_unmerge_and_the_merged_plain_model_agree():
    model = _model()
    base_weights = {k: tinyllm.to_numpy(v.data).copy() for k, v in model.state_dict().items()}
    apply_lora(model, r=3, alpha=6, targets=("c_attn", "c_proj"))
    _randomize_adapters(model)
    ids = _ids()
    wrapped = _logits(model, ids)
    assert np.abs(wrapped - _logits(_model(), ids)).max() > 1e-3  # the adapters do change the output
    merge_lora(model)
    np.testing.assert_allclose(_logits(model, ids), wrapped, atol=1e-6)
    plain = GPT(CFG)
    plain.load_state_dict(merged_state_dict(model))
    np.testing.assert_allclose(_logits(plain, ids), wrapped, atol=1e-6)
    unmerge_lora(model)
    np.testing.assert_allclose(_logits(model, ids), wrapped, atol=1e-6)
    for k, w in base_weights.items():  # the base weights are back, to float rounding
        np.testing.assert_allclose(tinyllm.to_numpy(model.state_dict()[k].data), w, atol=1e-6)
    # merged_state_dict of an unmerged model is the same plain model
    plain.load_state_dict(merged_state_dict(model))
    np.testing.assert_allclose(_logits(plain, ids), wrapped, atol=1e-6)


def test_generate_with_adapters_uses_the_modules_and_matches_the_merged_plain_model():
    model = _model()
    apply_lora(model, r=2, alpha=4)
    _randomize_adapters(model)
    assert model.make_decoder(1) is None  # a LoRALinear is not a layer the raw-array Decoder repeats
    plain = GPT(CFG)
    plain.load_state_dict(merged_state_dict(model))
    assert plain.make_decoder(1) is not None
    prompt = _ids(B=2, T=3)
    out = model.generate(prompt, 8, temperature=0)
    np.testing.assert_array_equal(out, model.generate(prompt, 8, temperature=0, fast_decode=False))
    np.testing.assert_array_equal(out, plain.generate(prompt, 8, temperature=0))  # the Decoder, merged weights
    np.testing.assert_array_equal(out, model.generate(prompt, 8, temperature=0, use_cache=False))


def test_adapters_save_alone_and_load_into_a_fresh_base(tmp_path):
    model = _model()
    apply_lora(model, r=2, alpha=2, targets=("c_attn",), dropout=0.1)
    _randomize_adapters(model)
    path = save_adapters(model, tmp_path / "adapters.safetensors")
    other = load_adapters(_model(), path)  # same base (seed 0), wrapped from the file's settings
    np.testing.assert_array_equal(_logits(other, _ids()), _logits(model, _ids()))
    assert [m.lora_dropout.p for _, m in lora_layers(other)] == [0.1, 0.1]
    assert path.stat().st_size < 4096  # A and B only: 2 layers x 2·(16 + 48) floats
    with pytest.raises(ValueError, match="rank 2"):
        load_adapters(apply_lora(_model(), r=3, alpha=3), path)
    merged = merge_lora(load_adapters(_model(), path))
    with pytest.raises(ValueError, match="unmerge_lora"):
        load_adapters(merged, path)
    (tmp_path / "bad.safetensors").write_bytes(b"")
    with pytest.raises(ValueError):
        load_adapters(_model(), tmp_path / "bad.safetensors")


def test_clear_refusals():
    with pytest.raises(ValueError, match="match no Linear layer.*c_attn"):
        apply_lora(_model(), targets=("q_proj",))
    with pytest.raises(ValueError, match="tied"):
        apply_lora(_model(), targets=("lm_head",))  # tie_embeddings: lm_head.weight is wte's
    untied = apply_lora(_model(tie_embeddings=False), r=2, targets=("lm_head",))
    assert isinstance(untied.lm_head, LoRALinear)
    with pytest.raises(ValueError, match="already holds"):
        apply_lora(untied)
    with pytest.raises(ValueError, match="r must be"):
        apply_lora(_model(), r=0)
    with pytest.raises(ValueError, match="alpha"):
        apply_lora(_model(), alpha=-1)
