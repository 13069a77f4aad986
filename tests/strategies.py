"""Hypothesis strategies for the autograd tests: shapes, broadcasting, layouts.

Bugs in array code hide in the corners, so the strategies lean on them:

    shapes()                0-4 dims, size-1 dims drawn often (broadcasting's favourite trap)
    broadcastable_shapes()  pairs (a, b) that broadcast, e.g. ((3, 1), (2, 1, 4))
    arrays(shape)           float64 host arrays with bounded values (no inf/nan)
    positive_arrays(shape)  values in [lo, hi] with lo > 0, for log, sqrt, pow
    tensors(shape)          tinyllm Tensors on the default device, contiguous or not:
                            a non-contiguous one is a strided, reversed and/or
                            transposed view into a bigger array whose other
                            entries are NaN, so reading outside the view shows up

Example:
    >>> @given(tensors(shapes(), contiguous=False))
    ... def test_exp(x): ...
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from tinyllm import backend
from tinyllm.tensor import Tensor

FLOAT_DTYPES = (np.float32, np.float64)


def sides(max_side: int = 4, min_side: int = 1):
    """A dimension's size: 1 about a third of the time, else min_side..max_side."""
    return st.one_of(st.just(1), st.integers(min_side, max_side)) if min_side <= 1 else st.integers(min_side, max_side)


def shapes(min_dims: int = 0, max_dims: int = 4, max_side: int = 4, min_side: int = 1):
    """Array shapes with min_dims..max_dims dimensions, size-1 dims frequent."""
    return st.lists(sides(max_side, min_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable_shapes(draw, min_dims: int = 0, max_dims: int = 4, max_side: int = 4):
    """A pair of shapes (a, b) that broadcast together (NumPy/PyTorch rules).

    Built from a common result shape: each operand takes a suffix of it and
    replaces some sizes by 1, e.g. result (2, 3, 4) -> ((3, 1), (2, 1, 4)).
    """
    result = draw(shapes(min_dims, max_dims, max_side, min_side=2))
    pair = []
    for _ in range(2):
        nd = draw(st.integers(0, len(result)))
        shape = list(result[len(result) - nd:])
        for k in range(nd):
            if draw(st.booleans()):
                shape[k] = 1
        pair.append(tuple(shape))
    return tuple(pair)


def matmul_shapes(max_batch_dims: int = 2, max_side: int = 4):
    """Shape pairs valid for matmul: 1-D and n-D operands, batch dims that broadcast."""
    return hnp.mutually_broadcastable_shapes(
        signature="(m?,n),(n,p?)->(m?,p?)", max_dims=max_batch_dims, min_side=1, max_side=max_side
    ).map(lambda s: s.input_shapes)


def arrays(shape, lo: float = -3.0, hi: float = 3.0, dtype=np.float64, unique: bool = False):
    """Host float arrays with values in [lo, hi] (shape: a tuple or a strategy of tuples)."""
    elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=64)
    return hnp.arrays(np.float64, shape, elements=elements, unique=unique).map(lambda a: a.astype(dtype))


def positive_arrays(shape, lo: float = 0.1, hi: float = 4.0, dtype=np.float64):
    """Host arrays with values in [lo, hi], lo > 0: safe for log, sqrt and fractional powers."""
    return arrays(shape, lo, hi, dtype)


def nonzero_arrays(shape, lo: float = 0.1, hi: float = 3.0, dtype=np.float64):
    """Values with lo <= |x| <= hi: away from the kinks of abs and relu, safe to divide by."""
    return arrays(shape, lo, hi).flatmap(
        lambda a: hnp.arrays(np.bool_, a.shape).map(lambda neg: np.where(neg, -a, a).astype(dtype))
    )


def on_device(host: np.ndarray, requires_grad: bool = True, layout=None) -> Tensor:
    """Put a host array on the default device as a leaf Tensor, laid out as `layout` says.

    layout: None (contiguous) or (steps, perm): the tensor becomes
    ``base[::steps[0], ::steps[1], ...].transpose(perm)`` of a NaN-filled base on the
    device, holding exactly `host`'s values (negative steps reverse a dim).
    """
    if layout is None:
        return tinyllm.tensor(host, requires_grad=requires_grad)
    steps, perm = layout
    view_host = host.transpose(np.argsort(perm))  # view.transpose(perm) == host
    base = np.full([n * abs(s) for n, s in zip(view_host.shape, steps)], np.nan, dtype=host.dtype)
    key = tuple(slice(None, None, s) for s in steps)
    base[key] = view_host
    view = backend.asarray(base)[key].transpose(tuple(perm))  # strided views on the device
    return Tensor(view, requires_grad=requires_grad)


@st.composite
def layouts(draw, ndim: int):
    """(steps, perm) for on_device that give a non-contiguous view whenever ndim >= 1."""
    steps = draw(st.lists(st.sampled_from([1, 2, -1, -2]), min_size=ndim, max_size=ndim))
    perm = draw(st.permutations(range(ndim)))
    if ndim and all(s == 1 for s in steps) and list(perm) == sorted(perm):
        steps[draw(st.integers(0, ndim - 1))] = 2
    return tuple(steps), tuple(perm)


@st.composite
def tensors(draw, shape=None, *, elements=None, dtype=None, requires_grad=True, contiguous=None):
    """tinyllm Tensors on the default device.

    shape:       a tuple, a strategy of tuples, or None (any of shapes()).
    elements:    a function shape -> strategy of host arrays (default: arrays).
    dtype:       float32/float64, or None to draw one.
    contiguous:  True, False (a strided/transposed view, see on_device), or None (either).
    """
    if shape is None:
        shape = shapes()
    if not isinstance(shape, tuple):
        shape = draw(shape)
    dtype = draw(st.sampled_from(FLOAT_DTYPES)) if dtype is None else dtype
    host = draw((elements or arrays)(shape)).astype(dtype)
    if contiguous is None:
        contiguous = draw(st.booleans())
    layout = None if contiguous or not shape else draw(layouts(len(shape)))
    return on_device(host, requires_grad=requires_grad and np.dtype(dtype).kind == "f", layout=layout)


# Unicode text for the tokenizer tests (pre-tokenizer scanners, encoder): the corners of the
# split patterns: contractions in both cases, letter classes, combining marks, digits of other
# scripts, every kind of whitespace, CRLF, emoji sequences, CJK.
UNICODE_FRAGMENTS = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'vE", "'ſ", "'", "''", " '", "’s",
    "don't", "HELLO", "Hello", "hello", "camelCase", "XMLHttpRequest", "ǅungla", "ʰʲ", "Ⅻ", "½", "²",
    "日本語", "テスト", "한국어", "Привет", "ΕΛΛΗΝΙΚΆ", "ελληνικά", "עברית", "مرحبا", "हिन्दी", "ไทย",
    "e\u0301", "\u0301", "a\u0308\u0301", "!\u0301", "123", "1234567", "٣٤٥", "१२३",
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "\u200b", "\ufeff", "\x00", "\x7f",
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\n ", "\u00a0", "\u3000", "\u2028", "\u2029",
    "\x0b", "\x0c", "\x85", "\x1c", "\x1f", "\u1680", "\u202f",
    "!", "?!", "...", "—", "/", "//", "\"", "(", ")", "$", "€", "#", "@", "-", "_", "\\",
]


def unicode_texts(max_fragments: int = 40):
    """Text made of the corner-case fragments above, any non-surrogate characters and short random strings."""
    piece = st.one_of(st.sampled_from(UNICODE_FRAGMENTS), st.sampled_from(UNICODE_FRAGMENTS),
                      st.characters(exclude_categories=("Cs",)), st.text(max_size=4))
    return st.lists(piece, max_size=max_fragments).map("".join)
