"""tinyllm -> ONNX Runtime (tinyllm/interop/onnx.py), checked by ONNX Runtime itself; skipped without optimum.

A GPT-2-style and a Llama-style (grouped-query) model exported with export_onnx and run by
ORTModelForCausalLM: logits within 1e-4 of tinyllm's, greedy generation (through the graph's
KV cache) the same tokens. Nothing is downloaded.
"""

import numpy as np
import pytest

import tinyllm
from tinyllm.interop.onnx import export_onnx
from tinyllm.nn import GPT, GPTConfig
from tinyllm.tokenizer import BPETokenizer

ort = pytest.importorskip("optimum.onnxruntime", reason="pip install optimum-onnx onnxruntime")
torch = pytest.importorskip("torch")


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [
    GPTConfig(vocab_size=300, context_length=32, n_layer=2, n_head=4, d_model=32, activation="gelu_tanh"),
    GPTConfig(vocab_size=300, context_length=32, n_layer=2, n_head=4, n_kv_head=2, d_model=32, pos_encoding="rope",
              norm="rmsnorm", activation="swiglu", bias=False, tie_embeddings=False),
], ids=["gpt2", "llama-gqa"])
def test_onnx_runtime_computes_the_same_logits_and_tokens(tmp_path, cfg):
    model = GPT(cfg).eval()
    tok = BPETokenizer.train("the cat sat on the mat. " * 20, vocab_size=280, progress=False)
    export_onnx(model, tok, tmp_path)
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "tokenizer.json").is_file()
    session = ort.ORTModelForCausalLM.from_pretrained(tmp_path)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 17))
    mask = torch.ones(ids.shape, dtype=torch.long)
    logits = session(input_ids=torch.tensor(ids), attention_mask=mask).logits.numpy()
    np.testing.assert_allclose(tinyllm.to_numpy(model(ids)[0].data), logits, atol=1e-4, rtol=0)
    session.generation_config.eos_token_id, session.generation_config.pad_token_id = None, 0
    got = session.generate(torch.tensor(ids[:, :4]), attention_mask=mask[:, :4], max_new_tokens=12,
                           do_sample=False).numpy()
    np.testing.assert_array_equal(got, model.generate(ids[:, :4], 12, temperature=0))


def test_inexpressible_config_is_refused_before_export(tmp_path):
    cfg = GPTConfig(vocab_size=50, context_length=8, n_layer=1, n_head=1, d_model=8, pos_encoding="alibi")
    with pytest.raises(ValueError, match="pos_encoding='alibi'"):
        export_onnx(GPT(cfg), None, tmp_path / "x")
    assert not (tmp_path / "x").exists()
