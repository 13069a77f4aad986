"""The primitive operations: one Function class and one lowercase wrapper each, by family.

Every op computes on raw arrays of its inputs' own module (``xp = backend.of(x)``),
so the same code runs on NumPy, CuPy and the strict test device. Each backward
opens with the derivative it implements. Broadcasting is undone by the engine
(``tinyllm.autograd.unbroadcast``), so a backward may return a gradient of the
broadcast shape. Names, arguments and semantics are PyTorch's.

Read in this order (the order a course meets them):

    arithmetic.py   add sub mul div pow maximum minimum where clamp; lt le gt ge eq ne
    unary.py        neg exp log sqrt rsqrt square reciprocal tanh sigmoid relu abs softplus
    special.py      sin cos log1p expm1 erf; floor round sign trunc (zero gradient)
    linalg.py       matmul bmm outer einsum
    reductions.py   sum mean var std amax amin max min argmax argmin norm logsumexp prod
                    cumsum all any
    indexing.py     getitem gather scatter_add index_select take_along_dim masked_fill tril triu
    shape.py        reshape flatten permute transpose expand unsqueeze squeeze repeat flip roll
                    cat stack split chunk unbind narrow
    sorting.py      sort argsort topk
    types.py        astype to_device
    common.py       what they share: operands, dims -> axes
"""

from tinyllm.ops.arithmetic import (
    add,
    clamp,
    clip,
    div,
    eq,
    ge,
    gt,
    le,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    pow,
    sub,
    where,
)
from tinyllm.ops.indexing import (
    gather,
    getitem,
    index_select,
    masked_fill,
    scatter_add,
    take_along_dim,
    tril,
    triu,
)
from tinyllm.ops.linalg import bmm, einsum, matmul, outer
from tinyllm.ops.reductions import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    norm,
    prod,
    std,
    sum,
    var,
)
from tinyllm.ops.shape import (
    cat,
    chunk,
    expand,
    flatten,
    flip,
    narrow,
    permute,
    repeat,
    reshape,
    roll,
    split,
    squeeze,
    stack,
    transpose,
    unbind,
    unsqueeze,
)
from tinyllm.ops.sorting import argsort, sort, topk
from tinyllm.ops.special import cos, erf, expm1, floor, log1p, round, sign, sin, trunc
from tinyllm.ops.types import astype, to_device
from tinyllm.ops.unary import (
    abs,
    exp,
    log,
    neg,
    reciprocal,
    relu,
    rsqrt,
    sigmoid,
    softplus,
    sqrt,
    square,
    tanh,
)

__all__ = [
    "abs", "add", "all", "amax", "amin", "any", "argmax", "argmin", "argsort", "astype", "bmm", "cat", "chunk",
    "clamp", "clip", "cos", "cumsum", "div", "einsum", "eq", "erf", "exp", "expand", "expm1", "flatten", "flip",
    "floor", "gather", "ge", "getitem", "gt", "index_select", "le", "log", "log1p", "logsumexp", "lt",
    "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "narrow", "ne", "neg", "norm",
    "outer", "permute", "pow", "prod", "reciprocal", "relu", "repeat", "reshape", "roll", "round", "rsqrt",
    "scatter_add", "sigmoid", "sign", "sin", "softplus", "sort", "split", "sqrt", "square", "squeeze", "stack",
    "std", "sub", "sum", "take_along_dim", "tanh", "to_device", "topk", "transpose", "tril", "triu", "trunc",
    "unbind", "unsqueeze", "var", "where",
]
