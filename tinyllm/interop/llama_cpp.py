"""Run a GGUF file in llama.cpp (through llama-cpp-python) and compare it with the tinyllm model it came from.

The comparison that makes an exporter trustworthy is the runtime's own answer: llama.cpp loads
the file, tokenizes the text and computes logits with its own code (ggml's CPU kernels), and the
numbers are set beside tinyllm's for the same ids. What to expect (ggml-cpu, llama.cpp as
vendored by llama-cpp-python 0.3.36):

    F32, llama  equal to float32 rounding, ~1e-6 relative: the same math in another order, with the KV
                cache kept in F32 (type_k = type_v = 0; llama.cpp's default is F16)
    F32, gpt2   ~1e-3: ggml's CPU GELU looks each activation up in a float16 table (GGML_GELU_FP16 in
                ggml-cpu/vec.h), rounding its input and output to 11 significant bits
    Q8_0, Q4_0  llama.cpp multiplies by the blocks with the activations quantized to Q8_0, as tinyllm's
                QuantLinear does, so compare with the quantized tinyllm model, not the float one. Where
                x/d lands within float rounding of a half-step, the two programs can round it to
                neighbouring levels (x86's quantize_row_q8_0 multiplies by 127/max rather than dividing
                by max/127; the sums run in another order): one activation moves by d, and the logits by
                up to ~1e-2 of their range in a model with large weights

``compare(model, tok, path, text)`` returns the token ids of both, the largest relative logit
difference (max |a - b| / max |b| per position) and both greedy continuations.

Example:
    >>> r = compare(model, tok, "out/model-f32.gguf", "ROMEO:\\nI dreamt", n_greedy=32)
    >>> r["same_tokens"], r["max_rel_diff"], r["same_greedy"]
    (True, 1.3e-06, True)
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.autograd import no_grad


def load(path, n_ctx: int, n_threads: int | None = None):
    """A llama_cpp.Llama for the file: logits at every position, an F32 KV cache, no flash attention."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ImportError("comparing with llama.cpp needs llama-cpp-python: CMAKE_ARGS='-DLLAVA_BUILD=OFF' "
                          "pip install llama-cpp-python (it compiles llama.cpp, ~5 minutes)") from None
    return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                 type_k=0, type_v=0, flash_attn=False, n_threads=n_threads, verbose=False, seed=0)


def logits(llm, ids) -> np.ndarray:
    """llama.cpp's logits (T, V) for ids, from an empty cache."""
    llm.reset()
    llm.eval(list(map(int, ids)))
    return np.array(llm.scores[:len(ids)], dtype=np.float32)


def greedy(llm, ids, n: int) -> list[int]:
    """n tokens after ids, each the argmax of llama.cpp's logits."""
    llm.reset()
    llm.eval(list(map(int, ids)))
    out = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out


def compare(model, tok, path, text: str, n_greedy: int = 32, llm=None) -> dict:
    """llama.cpp against tinyllm on text (module docstring): tokens, logits, greedy continuation."""
    ctx = model.config.context_length
    llm = llm or load(path, ctx)
    ours = tok.encode(text)
    theirs = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    ids = np.asarray(ours[-(ctx - n_greedy):], dtype=np.int64)
    a = logits(llm, ids)
    with no_grad():
        b = backend.to_numpy(model(ids[None])[0].data).astype(np.float32)[0]  # (T, V)
    rel = np.abs(a - b).max(axis=1) / np.abs(b).max(axis=1)
    g_theirs = greedy(llm, ids, n_greedy)
    g_ours = [int(t) for t in model.generate(ids[None], n_greedy, temperature=0)[0, len(ids):]]
    return dict(tokens_ours=list(map(int, ours)), tokens_llama_cpp=list(map(int, theirs)),
                same_tokens=list(map(int, ours)) == list(map(int, theirs)), max_rel_diff=float(rel.max()),
                mean_rel_diff=float(rel.mean()), top1_agree=float((a.argmax(1) == b.argmax(1)).mean()),
                greedy_ours=g_ours, greedy_llama_cpp=g_theirs, same_greedy=g_ours == g_theirs,
                greedy_prefix=next((i for i, (x, y) in enumerate(zip(g_ours, g_theirs)) if x != y), n_greedy))
