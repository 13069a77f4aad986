"""GGUF export: a tinyllm GPT as a file llama.cpp runs (the GGUF spec, ggml's docs/gguf.md).

A GGUF file is a header of key-value metadata (architecture, sizes, the tokenizer), a table of
tensors (name, shape, ggml type, offset) and the tensors' bytes, aligned. The ``gguf`` package
(gguf-py, llama.cpp's own) writes the container; every block of a quantized tensor is tinyllm's
(tinyllm/quant/ggml.py, byte-equal to ggml's quantizers).

Two of llama.cpp's architectures cover tinyllm's configs:

    gpt2    learned positions, LayerNorm, GELU MLP, fused qkv with biases (GPT-2 itself)
            token_embd, position_embd, blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up,
            ffn_down}.{weight,bias}, output_norm, output (left out when tied: llama.cpp reuses token_embd)
    llama   RoPE, RMSNorm, SwiGLU MLP, no biases (LLaMA)
            blk.N.{attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down}.weight, the norms

Names map as llama.cpp's convert_hf_to_gguf.py maps Hugging Face's (c_attn -> attn_qkv, c_fc ->
ffn_up, c_proj -> ffn_down, c_gate -> ffn_gate). Shapes are written as NumPy holds them; GGUF
lists a tensor's dims fastest first, so (out, in) appears as [in, out], which the writer does.

# subtle: RoPE's two layouts. tinyllm rotates the halves of a head (x_i with x_{i + hs/2}: GPT-NeoX,
# Hugging Face's rotate_half); llama.cpp's "llama" rotates neighbours (x_{2i} with x_{2i+1}: the
# original LLaMA). Both are the same model if the rows of W_q and W_k are reordered head by head:
# row i of the half layout -> row 2i, row hs/2 + i -> row 2i + 1 (convert_hf_to_gguf's permute).

What gets quantized (dtype q8_0, q5_0, q4_0, f16): the matrices of the blocks, the ones
``tinyllm.quant.quantize_model`` quantizes, so a quantized tinyllm model and its GGUF file compute
the same function; embeddings, the LM head, norms and biases stay F32 (llama.cpp needs the last
two in F32). A layer the model already holds quantized (a QuantLinear in a ggml format) is written
with its own blocks, so an AWQ-scaled or hand-edited model keeps exactly its bytes.

Activation: llama.cpp's gpt2 graph computes GELU in its tanh form (GPT-2's own, tinyllm's
"gelu_tanh"); a model trained with the exact erf GELU ("gelu") differs by up to ~1e-3 per unit,
so it is exported only with approximate_gelu=True.

Example:
    >>> export_gguf(model, tok, "out/model-q8_0.gguf", dtype="q8_0")   # -> the path, ready for llama.cpp
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyllm import backend
from tinyllm.interop.gguf_vocab import gguf_vocabulary
from tinyllm.quant import ggml
from tinyllm.quant.linear import QuantLinear

DTYPES = ("f32", "f16", "q8_0", "q5_0", "q4_0")
_FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "q5_0": 8}  # gguf.LlamaFileType


def architecture(config, approximate_gelu: bool = False) -> str:
    """ "gpt2" or "llama" for a GPTConfig, or a ValueError saying what llama.cpp would need."""
    c = config
    base = c.attention == "full" and getattr(c, "norm_position", "pre") == "pre" and getattr(c, "causal", True)
    if base and c.pos_encoding == "learned" and c.norm == "layernorm" and c.activation in ("gelu_tanh", "gelu"):
        if c.activation == "gelu" and not approximate_gelu:
            raise ValueError("llama.cpp's gpt2 graph computes GELU as its tanh approximation, this model was trained "
                             "with the exact erf GELU (activation 'gelu'): logits would differ by ~1e-3; pass "
                             "approximate_gelu=True (--approximate-gelu) to export it anyway, or train with "
                             "--activation gelu_tanh")
        return "gpt2"
    if base and c.pos_encoding == "rope" and c.norm == "rmsnorm" and c.activation == "swiglu" and not c.bias:
        return "llama"
    raise ValueError(f"llama.cpp runs tinyllm's GPT-2-style configs (learned positions, layernorm, gelu_tanh) as "
                     f"'gpt2' and LLaMA-style ones (rope, rmsnorm, swiglu, bias=False) as 'llama'; this one has "
                     f"pos_encoding={c.pos_encoding!r}, norm={c.norm!r}, activation={c.activation!r}, bias={c.bias}")


def rope_to_interleaved(w, n_heads: int):
    """Rows of W_q or W_k, (n_heads·hs, C), from the rotate-half layout to GGUF's interleaved one.

    Within each head, rows [x_0 .. x_{h-1}, y_0 .. y_{h-1}] (h = hs/2) become [x_0, y_0, x_1, y_1, ...].
    Only rows move, so w may be float or a quantized tensor's block rows (C then counts bytes).
    """
    rows, C = w.shape
    hs = rows // n_heads
    return w.reshape(n_heads, 2, hs // 2, C).swapaxes(1, 2).reshape(rows, C)  # (nh, 2, h, C) -> (nh, h, 2, C)


def _linear(module, dtype: str):
    """(array, ggml type name) of a block matrix in the export's dtype; a ggml QuantLinear keeps its blocks."""
    if isinstance(module, QuantLinear):
        if module.method in ggml.FORMATS:
            if dtype not in (module.method, "f32"):
                raise ValueError(f"the model holds {module.method} blocks; export it with dtype={module.method!r} "
                                 f"(its own bytes) or quantize the float model instead")
            return backend.to_numpy(module.weight_blocks.data), module.method
        w = module.dequantized_weight()
    else:
        w = module.weight.data
    w = backend.to_numpy(w).astype(np.float32)
    if dtype == "f32":
        return w, "f32"
    if dtype == "f16":
        return w.astype(np.float16), "f16"
    return ggml.quantize(w, dtype), dtype


def _vec(t, n: int):
    """A bias or norm as float32, zeros for a missing bias (llama.cpp's gpt2 wants them all)."""
    return np.zeros(n, np.float32) if t is None else backend.to_numpy(t.data).astype(np.float32)


def tensors(model, dtype: str, arch: str):
    """Yield (GGUF name, array, ggml type name) for every tensor of the file."""
    c = model.config
    tr = model.transformer
    f32 = lambda t: backend.to_numpy(t.data).astype(np.float32)  # noqa: E731
    yield "token_embd.weight", f32(tr.wte.weight), "f32"
    if arch == "gpt2":
        yield "position_embd.weight", f32(tr.wpe.weight), "f32"
    for i, blk in enumerate(tr.h):
        p = f"blk.{i}."
        yield p + "attn_norm.weight", f32(blk.ln_1.weight), "f32"
        yield p + "ffn_norm.weight", f32(blk.ln_2.weight), "f32"
        if arch == "gpt2":
            yield p + "attn_norm.bias", _vec(blk.ln_1.bias, c.d_model), "f32"
            yield p + "ffn_norm.bias", _vec(blk.ln_2.bias, c.d_model), "f32"
            yield (p + "attn_qkv.weight", *_linear(blk.attn.c_attn, dtype))
            yield p + "attn_qkv.bias", _vec(blk.attn.c_attn.bias, blk.attn.c_attn.out_features), "f32"
            yield p + "attn_output.bias", _vec(blk.attn.c_proj.bias, c.d_model), "f32"
            yield p + "ffn_up.bias", _vec(blk.mlp.c_fc.bias, c.d_ff), "f32"
            yield p + "ffn_down.bias", _vec(blk.mlp.c_proj.bias, c.d_model), "f32"
        else:
            w, kind = _linear(blk.attn.c_attn, dtype)  # rows q, k, v: each row is its own blocks, so rows
            nq, nk = c.n_head * c.head_dim, c.kv_heads * c.head_dim  # split and move alike in every dtype
            for name, rows in (("attn_q", rope_to_interleaved(w[:nq], c.n_head)),
                               ("attn_k", rope_to_interleaved(w[nq:nq + nk], c.kv_heads)), ("attn_v", w[nq + nk:])):
                yield p + name + ".weight", np.ascontiguousarray(rows), kind
            yield (p + "ffn_gate.weight", *_linear(blk.mlp.c_gate, dtype))
        yield (p + "attn_output.weight", *_linear(blk.attn.c_proj, dtype))
        yield (p + "ffn_up.weight", *_linear(blk.mlp.c_fc, dtype))
        yield (p + "ffn_down.weight", *_linear(blk.mlp.c_proj, dtype))
    yield "output_norm.weight", f32(tr.ln_f.weight), "f32"
    if arch == "gpt2":
        yield "output_norm.bias", _vec(tr.ln_f.bias, c.d_model), "f32"
    if not c.tie_embeddings:
        yield "output.weight", f32(model.lm_head.weight), "f32"


def export_gguf(model, tokenizer, path, dtype: str = "f32", approximate_gelu: bool = False, name: str = "tinyllm"):
    """Write model (a GPT) and its tokenizer as a GGUF file llama.cpp loads -> the path (module docstring)."""
    import gguf  # the container's writer: llama.cpp's own gguf-py (pip install gguf)

    if dtype not in DTYPES:
        raise ValueError(f"export_gguf: dtype must be one of {DTYPES}, got {dtype!r}")
    c = model.config
    arch = architecture(c, approximate_gelu)
    vocab = gguf_vocabulary(tokenizer, c.vocab_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name)
    w.add_context_length(c.context_length)
    w.add_embedding_length(c.d_model)
    w.add_feed_forward_length(c.d_ff)
    w.add_block_count(c.n_layer)
    w.add_head_count(c.n_head)
    w.add_head_count_kv(c.kv_heads)
    w.add_file_type(_FILE_TYPE[dtype])
    if arch == "gpt2":
        w.add_layer_norm_eps(float(c.norm_eps))
    else:
        w.add_layer_norm_rms_eps(float(c.norm_eps))
        w.add_rope_dimension_count(c.head_dim)
        w.add_rope_freq_base(float(c.rope_theta))
        w.add_vocab_size(c.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    w.add_token_merges(vocab.merges)
    w.add_add_bos_token(False)
    if tokenizer.special_tokens:  # the first special token (e.g. <|endoftext|>) ends a text
        w.add_eos_token_id(min(tokenizer.special_tokens.values()))
    if dtype not in ("f32", "f16"):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for tname, array, kind in tensors(model, dtype, arch):
        if kind in ggml.FORMATS:
            w.add_tensor(tname, array, raw_dtype=gguf.GGMLQuantizationType[kind.upper()])
        else:
            w.add_tensor(tname, np.ascontiguousarray(array))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
