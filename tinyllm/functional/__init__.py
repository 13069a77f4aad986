"""tinyllm.functional (``import tinyllm.functional as F``): the fused ops of a transformer.

A transformer spends its time in a handful of operations. Each one here is a
single Function with a hand-derived backward instead of a graph of primitives:
less Python per step, fewer saved arrays, and a backward that is one closed
form (written as a comment at the top of each ``backward``). Names, arguments
and semantics follow ``torch.nn.functional``, so PyTorch code translates line
by line; the tests check every op against its composition from
``tinyllm.ops``, against PyTorch, and against finite differences.

    softmax.py        softmax, log_softmax
    cross_entropy.py  cross_entropy (weight, ignore_index, label_smoothing, reductions)
    activations.py    gelu (exact, tanh), silu; relu, sigmoid, tanh, softplus (the primitives),
                      logsigmoid, leaky_relu, glu (compositions of them)
    gated.py          swiglu, geglu: the gate of a gated MLP, act(g) ⊙ u in one pass
    norms.py          layer_norm, rms_norm
    embedding.py      embedding
    dropout.py        dropout
    linear.py         linear
    attention.py      scaled_dot_product_attention (causal, masks, dropout, GQA, sliding window)
    memory_efficient_attention.py   memory_efficient_attention (queries in chunks: memory O(chunk · S))
    flash_attention.py              flash_attention (tiles, online softmax, FlashAttention-2's backward: O(L + S))
    kernels.py        the Numba fast path (host, float32) of the above

The rest of the torch.nn.functional surface that the later chapters use
(regression, classifiers, distillation, contrastive and reward losses, padding
of batches) is mostly written as compositions of tinyllm.ops primitives, its
gradient from the autograd, since none of it sits in a transformer's hot loop;
where a composition would miss torch's gradient, it is a small Function.

    losses.py         mse_loss, l1_loss, smooth_l1_loss, huber_loss; nll_loss (weight, ignore_index),
                      binary_cross_entropy (a Function: torch's gradient at p = 0, 1),
                      binary_cross_entropy_with_logits (weight, pos_weight), kl_div ("batchmean")
    encoding.py       one_hot
    vectors.py        normalize, cosine_similarity
    padding.py        pad (constant mode, a Function: a copy into a filled array; negative amounts crop)
    fake_quantize.py  fake_quantize: round to an integer grid forward, straight-through backward (QAT, §14)

Every op takes its array module from its inputs, so it runs on NumPy, CuPy and
the strict test device; on the host in float32 the hot loops run as Numba
kernels checked against the reference code.
"""

from tinyllm.functional.activations import gelu, glu, leaky_relu, logsigmoid, relu, sigmoid, silu, softplus, tanh
from tinyllm.functional.attention import scaled_dot_product_attention
from tinyllm.functional.cross_entropy import cross_entropy
from tinyllm.functional.dropout import dropout
from tinyllm.functional.embedding import embedding
from tinyllm.functional.encoding import one_hot
from tinyllm.functional.fake_quantize import fake_quantize
from tinyllm.functional.flash_attention import flash_attention
from tinyllm.functional.gated import geglu, swiglu
from tinyllm.functional.linear import linear
from tinyllm.functional.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from tinyllm.functional.memory_efficient_attention import memory_efficient_attention
from tinyllm.functional.norms import layer_norm, rms_norm
from tinyllm.functional.padding import pad
from tinyllm.functional.softmax import log_softmax, softmax
from tinyllm.functional.vectors import cosine_similarity, normalize

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_similarity", "cross_entropy", "dropout",
    "embedding", "fake_quantize", "flash_attention", "gelu", "geglu", "glu", "huber_loss", "kl_div", "l1_loss",
    "layer_norm",
    "leaky_relu", "linear", "log_softmax", "logsigmoid", "memory_efficient_attention", "mse_loss", "nll_loss",
    "normalize", "one_hot", "pad", "relu", "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu",
    "smooth_l1_loss", "softmax", "softplus", "swiglu", "tanh",
]
