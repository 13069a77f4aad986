"""tinyllm.functional (``import tinyllm.functional as F``): the fused ops of a transformer.

A transformer spends its time in a handful of operations. Each one here is a
single Function with a hand-derived backward instead of a graph of primitives:
less Python per step, fewer saved arrays, and a backward that is one closed
form (written as a comment at the top of each ``backward``). Names, arguments
and semantics follow ``torch.nn.functional``, so PyTorch code translates line
by line; the tests check every op against its composition from
``tinyllm.ops``, against PyTorch, and against finite differences.

    softmax.py        softmax, log_softmax
    cross_entropy.py  cross_entropy (ignore_index, label_smoothing, reductions)
    activations.py    gelu (exact, tanh), silu, relu
    norms.py          layer_norm, rms_norm
    embedding.py      embedding
    dropout.py        dropout
    linear.py         linear
    attention.py      scaled_dot_product_attention (causal, masks, dropout, GQA)
    kernels.py        the Numba fast path (host, float32) of the above

Every op takes its array module from its inputs, so it runs on NumPy, CuPy and
the strict test device; on the host in float32 the hot loops run as Numba
kernels checked against the reference code.
"""

from tinyllm.functional.activations import gelu, relu, silu
from tinyllm.functional.attention import scaled_dot_product_attention
from tinyllm.functional.cross_entropy import cross_entropy
from tinyllm.functional.dropout import dropout
from tinyllm.functional.embedding import embedding
from tinyllm.functional.linear import linear
from tinyllm.functional.norms import layer_norm, rms_norm
from tinyllm.functional.softmax import log_softmax, softmax

__all__ = [
    "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax", "relu",
    "rms_norm", "scaled_dot_product_attention", "silu", "softmax",
]
