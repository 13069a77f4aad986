"""GGUF export: the file's structure and bytes (with gguf-py's reader), and llama.cpp running it.

Without the gguf package the export tests skip (pip install gguf); the llama.cpp tests need
llama-cpp-python too (CMAKE_ARGS="-DLLAVA_BUILD=OFF" pip install llama-cpp-python, a ~5 minute
build). Tolerances, and why (tinyllm/interop/llama_cpp.py):

    F32 llama   logits within 1e-4 relative          the same math, another summation order
    F32 gpt2    within 2e-3                          ggml's GELU reads a float16 table
    Q8_0, Q4_0  against tinyllm's quantized model: mean relative difference < 1e-2, top-1 >= 0.9;
                a few activations round to a neighbouring level in one program and not the other
    greedy      32 tokens equal for F32
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from shared_data import data_file

import tinyllm
from tinyllm import backend
from tinyllm.interop.gguf import architecture, export_gguf, rope_to_interleaved
from tinyllm.interop.gguf_vocab import bytes_to_unicode, gguf_vocabulary, merges
from tinyllm.nn import GPT, GPTConfig
from tinyllm.quant import ggml, quantize_model
from tinyllm.tokenizer import BPETokenizer, CharTokenizer

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        "You are all resolved rather to die than to famish?  It's 1234 o'clock -- isn't it?\n")
GPT2 = GPTConfig(vocab_size=1, context_length=64, n_layer=2, n_head=4, d_model=64, activation="gelu_tanh")
LLAMA = dataclasses.replace(GPT2, pos_encoding="rope", norm="rmsnorm", activation="swiglu", bias=False, n_kv_head=2,
                            d_ff=None)


def _model(cfg, vocab_size, scale=3.0, seed=0):
    """Random weights, scaled up so that the logits are peaked (greedy text is then not a coin toss)."""
    tinyllm.manual_seed(seed)
    with backend.use_device("cpu"):
        m = GPT(dataclasses.replace(cfg, vocab_size=vocab_size)).eval()
    for p in m.parameters():
        if p.ndim == 2:
            p.data = p.data * scale
    return m


@pytest.fixture(scope="module")
def gguf():
    return pytest.importorskip("gguf", reason="the GGUF writer and reader: pip install gguf")


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer.from_text(TEXT)


@pytest.fixture(scope="module")
def bpe_tok():
    return BPETokenizer.train(TEXT * 4, vocab_size=300, pattern="gpt2")


def test_gpt2_bytes_to_unicode_and_merges_from_ranks():
    table = bytes_to_unicode()
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    assert len(set(table.values())) == 256
    ranks = {bytes([i]): i for i in range(256)}
    ranks.update({b"ab": 256, b"abb": 257, b"b b": 258})
    ranks[b" b"] = 259  # ranked after "b b", which needs it: not buildable by one merge
    with pytest.raises(ValueError, match="is not one merge of two lower tokens"):
        merges(ranks)
    del ranks[b"b b"]
    ranks[b" b"] = 258
    assert merges(ranks) == [(b"a", b"b"), (b"ab", b"b"), (b" ", b"b")]


@pytest.mark.slow
def test_gpt2_ranks_give_gpt2_merges(gguf):
    from tinyllm.tokenizer.rankfile import read_ranks

    m = merges(read_ranks(data_file("gpt2.tiktoken")))
    assert len(m) == 50000  # GPT-2's merges.txt: 50,000 lines after its header
    assert m[:3] == [(b" ", b"t"), (b" ", b"a"), (b"h", b"e")] and m[-1] == (b" g", b"azed")


def test_vocabulary_pads_and_refuses_what_llama_cpp_cannot_tokenize(char_tok):
    v = gguf_vocabulary(char_tok, char_tok.vocab_size + 3)
    assert v.tokens[:2] == ["Ċ", "Ġ"] and v.tokens[-1] == f"<unused{char_tok.vocab_size + 2}>" and v.types[-1] == 5
    assert len(v.merges) == 1 and v.pre == "gpt-2"  # one merge that never fires (llama.cpp needs the key)
    with pytest.raises(ValueError, match="one-byte"):
        gguf_vocabulary(CharTokenizer.from_text("café"), 10)
    with pytest.raises(ValueError, match="only 3 rows"):
        gguf_vocabulary(char_tok, 3)


def test_architecture_and_rope_layout():
    assert architecture(GPT2) == "gpt2" and architecture(LLAMA) == "llama"
    with pytest.raises(ValueError, match="approximate_gelu=True"):
        architecture(dataclasses.replace(GPT2, activation="gelu"))
    with pytest.raises(ValueError, match="llama.cpp runs"):
        architecture(dataclasses.replace(GPT2, pos_encoding="alibi"))
    # one head of 4 dims: rows [x0, x1, y0, y1] (pairs (x_i, y_i) rotate together) -> [x0, y0, x1, y1]
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.testing.assert_array_equal(rope_to_interleaved(w, 1), w[[0, 2, 1, 3]])


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0", "q4_0"])
def test_the_file_holds_the_models_tensors(gguf, tmp_path, char_tok, dtype):
    m = _model(GPT2, char_tok.vocab_size)
    path = export_gguf(m, char_tok, tmp_path / "m.gguf", dtype=dtype)
    r = gguf.GGUFReader(str(path))
    t = {x.name: x for x in r.tensors}
    assert len(t) == 2 + 12 * GPT2.n_layer + 2  # embeddings, 12 a block, the final norm; the head is tied
    w = m.transformer.h[1].mlp.c_fc.weight.data
    fc = t["blk.1.ffn_up.weight"]
    assert fc.tensor_type.name == dtype.upper() and [int(s) for s in fc.shape] == [w.shape[1], w.shape[0]]
    want = {"f32": w, "f16": w.astype(np.float16), "q8_0": ggml.quantize(w, "q8_0"), "q4_0": ggml.quantize(w, "q4_0")}
    np.testing.assert_array_equal(np.asarray(fc.data).reshape(want[dtype].shape), want[dtype])
    assert t["token_embd.weight"].tensor_type.name == "F32" and t["blk.0.attn_norm.bias"].tensor_type.name == "F32"
    arch = r.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "gpt2"


def test_a_quantized_model_exports_its_own_blocks(gguf, tmp_path, char_tok):
    m = quantize_model(_model(GPT2, char_tok.vocab_size), "q4_0")
    r = gguf.GGUFReader(str(export_gguf(m, char_tok, tmp_path / "q.gguf", dtype="q4_0")))
    blocks = backend.to_numpy(m.transformer.h[0].attn.c_proj.weight_blocks.data)
    got = next(x for x in r.tensors if x.name == "blk.0.attn_output.weight")
    np.testing.assert_array_equal(np.asarray(got.data).reshape(blocks.shape), blocks)
    with pytest.raises(ValueError, match="export it with dtype='q4_0'"):
        export_gguf(m, char_tok, tmp_path / "x.gguf", dtype="q8_0")


# ----------------------------------------------------------------------------- llama.cpp runs the files


@pytest.fixture(scope="module")
def llama_cpp(gguf):
    return pytest.importorskip("llama_cpp", reason="llama.cpp's Python binding: CMAKE_ARGS='-DLLAVA_BUILD=OFF' "
                                                   "pip install llama-cpp-python")


CASES = [  # (architecture, tokenizer, dtype, max relative logit difference, or None for quantized)
    ("gpt2", "char", "f32", 2e-3), ("gpt2", "char", "q8_0", None), ("gpt2", "bpe", "q4_0", None),
    ("llama", "bpe", "f32", 1e-4), ("llama", "char", "q8_0", None), ("llama", "bpe", "q4_0", None),
]


@pytest.mark.parametrize("arch,tokenizer,dtype,tol", CASES)
def test_llama_cpp_runs_the_export(llama_cpp, tmp_path, char_tok, bpe_tok, arch, tokenizer, dtype, tol):
    from tinyllm.interop.llama_cpp import compare

    tok = char_tok if tokenizer == "char" else bpe_tok
    m = _model(GPT2 if arch == "gpt2" else LLAMA, tok.vocab_size)
    if dtype != "f32":
        quantize_model(m, dtype)
    path = export_gguf(m, tok, tmp_path / "m.gguf", dtype=dtype)
    r = compare(m, tok, path, TEXT[:120], n_greedy=32)
    assert r["same_tokens"], (r["tokens_ours"], r["tokens_llama_cpp"])
    if tol is not None:
        assert r["max_rel_diff"] < tol and r["same_greedy"], r
    else:
        assert r["mean_rel_diff"] < 1e-2 and r["top1_agree"] >= 0.9, r


@pytest.mark.slow
def test_llama_cpp_tokenizes_like_gpt2(llama_cpp, tmp_path):
    from tinyllm.interop import llama_cpp as lc
    from tinyllm.tokenizer.rankfile import read_ranks

    tok = BPETokenizer(read_ranks(data_file("gpt2.tiktoken")), pattern="gpt2",
                       special_tokens={"<|endoftext|>": 50256})
    m = _model(dataclasses.replace(GPT2, d_model=32, n_layer=1, n_head=2), tok.vocab_size)
    llm = lc.load(export_gguf(m, tok, tmp_path / "gpt2.gguf"), 64)
    for text in (TEXT, "  leading spaces, trailing  \n\n", "Unicode: naïve café — 日本語 🙂", "x" * 40 + " 12345678"):
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == tok.encode(text), text


def test_export_command(gguf, tmp_path, char_tok, capsys):
    from tinyllm.cli import main
    from tinyllm.tokenizer.files import save_tokenizer

    _model(GPT2, char_tok.vocab_size).save_pretrained(tmp_path / "run")
    save_tokenizer(char_tok, tmp_path / "run")
    argv = ["export", "gguf", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "m.gguf"), "--dtype", "q4_0"]
    assert main(argv) == 0 and "wrote" in capsys.readouterr().out
    assert gguf.GGUFReader(str(tmp_path / "m.gguf")).tensors[0].name == "token_embd.weight"
    assert main(argv) == 2 and "pass --force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0
