"""Indexing: pick elements out (x[key], gather, index_select, take_along_dim), put them in
(scatter_add), or mask them (masked_fill, tril, triu).

Picking is linear, so its backward is the transposed move: every picked
element's gradient is *added* back at the place it came from (a scatter-add:
an element picked twice gets both gradients). ``IndexGrad`` carries that
"zero except at key" gradient to the engine, which writes it into one buffer.

    gather(x, dim=1, index):   out[i, j] = x[i, index[i, j]]
    scatter_add(x, 1, index, src):  out = x; out[i, index[i, j]] += src[i, j]

    >>> x = tinyllm.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> x.gather(1, tinyllm.tensor([[2, 0], [1, 1]]))
    tensor([[3., 1.],
           [5., 5.]])
"""

from __future__ import annotations

import builtins

from tinyllm import backend
from tinyllm.autograd import IndexGrad
from tinyllm.function import Function
from tinyllm.ops.common import axis, tensor_arg
from tinyllm.tensor import Tensor


def _raw_key(key):
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key


def _is_advanced(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return builtins.any(backend.is_array(k) or isinstance(k, list) for k in keys)


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, key):
        ctx.key = key
        return x[key]

    @staticmethod
    def backward(ctx, grad_out):
        # each selected element gets its output's gradient, the rest 0; an element
        # picked several times (integer arrays) gets the sum: a scatter-add.
        return IndexGrad(ctx.key, grad_out, _is_advanced(ctx.key))


def getitem(x, key):
    """x[key] for ints, slices, None, Ellipsis, bool masks and integer arrays (NumPy's rules)."""
    return GetItem.apply(x, key=_raw_key(key))


def _along(index, dim):
    """The full integer key of a gather along `dim`: index itself there, open ranges elsewhere.

    For index of shape (2, 3) and dim=1: (arange(2)[:, None], index), so key[i, j] = (i, index[i, j]).
    """
    xp = backend.of(index)
    key = []
    for d, n in enumerate(index.shape):
        if d == dim:
            key.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            key.append(xp.arange(n).reshape(shape))
    return tuple(key)


def _check_index(x, dim, index, name):
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must be an integer tensor, got dtype {index.dtype}")
    if index.ndim != x.ndim:
        raise ValueError(f"{name}: index must have as many dims as the input ({x.ndim}), "
                         f"got shape {tuple(index.shape)}")
    for d, (n, m) in enumerate(zip(index.shape, x.shape)):
        if d != dim and n > m:
            raise ValueError(f"{name}: index is larger than the input in dim {d} ({n} > {m})")


class Gather(Function):
    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.key = _along(index, dim)
        return x[ctx.key]

    @staticmethod
    def backward(ctx, grad_out):
        # out[i, j] = x[i, index[i, j]]: add each out gradient back at (i, index[i, j])
        return IndexGrad(ctx.key, grad_out, True), None


class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, index, src, dim):
        ctx.key = _along(index, dim)
        out = x.copy()
        backend.scatter_add(out, ctx.key, src)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # out = x + (src added at key): d/dx = 1; src[i, j]'s gradient is out's at its target, a gather
        n = ctx.needs_input_grad
        return grad_out, None, (grad_out[ctx.key] if n[2] else None)


def gather(x, dim, index):
    """torch.gather: ``out[i][j] = x[i][index[i][j]]`` for dim=1 (index may be smaller in other dims)."""
    index = tensor_arg(index)
    dim = axis(dim, x.ndim)
    _check_index(x, dim, index, "gather")
    return Gather.apply(x, index, dim=dim)


def scatter_add(x, dim, index, src):
    """torch.scatter_add: a copy of x with ``src[i][j]`` added at ``x[i][index[i][j]]`` (dim=1); repeats add up."""
    index, src = tensor_arg(index), tensor_arg(src)
    dim = axis(dim, x.ndim)
    _check_index(x, dim, index, "scatter_add")
    if src.shape != index.shape:  # torch uses the index-shaped corner of src
        if builtins.any(s < n for s, n in zip(src.shape, index.shape)) or src.ndim != index.ndim:
            raise ValueError(f"scatter_add: src {tuple(src.shape)} must be at least index's shape {tuple(index.shape)}")
        src = getitem(src, tuple(slice(0, n) for n in index.shape))
    return ScatterAdd.apply(x, index, src, dim=dim)


def index_select(x, dim, index):
    """The entries index[0], index[1], ... of x along `dim` (index 1-D): index_select(x, 0, [2, 0])."""
    index = tensor_arg(index)
    if index.ndim != 1 or index.dtype.kind not in "iu":
        raise ValueError(f"index_select: index must be a 1-D integer tensor, got shape {tuple(index.shape)} "
                         f"and dtype {index.dtype}")
    return getitem(x, (slice(None),) * axis(dim, x.ndim) + (index,))


def take_along_dim(x, indices, dim=None):
    """torch.take_along_dim: gather with broadcasting (NumPy's take_along_axis); dim None: flattened."""
    indices = tensor_arg(indices)
    if dim is None:
        return gather(x.reshape(-1), 0, indices.reshape(-1))
    dim = axis(dim, x.ndim)
    if x.ndim != indices.ndim:
        raise ValueError(f"take_along_dim: input and indices need the same number of dims, "
                         f"got {x.ndim} and {indices.ndim}")
    shape = [b if a == 1 else a for a, b in zip(x.shape, indices.shape)]  # broadcast (0 and 1 -> 0)
    x_shape, i_shape = list(shape), list(shape)
    x_shape[dim], i_shape[dim] = x.shape[dim], indices.shape[dim]
    xb = x if tuple(x_shape) == x.shape else x.expand(*x_shape)
    if tuple(i_shape) != indices.shape:  # an index tensor needs no graph: broadcast its array
        indices = Tensor(backend.of(indices.data).broadcast_to(indices.data, i_shape))
    return gather(xb, dim, indices)


# ----------------------------------------------------------------------------- masks


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        return backend.of(x).where(mask, x.dtype.type(value), x)

    @staticmethod
    def backward(ctx, grad_out):
        # filled positions are constants: no gradient flows through them
        (mask,) = ctx.saved
        return backend.of(grad_out).where(mask, grad_out.dtype.type(0), grad_out), None


def masked_fill(x, mask, value):
    """Where `mask` (bool, broadcastable to x) is true, replace by `value` (a number or a one-element tensor)."""
    if isinstance(value, Tensor):
        value = value.item()
    return MaskedFill.apply(x, mask, value=value)  # a Tensor mask stays one: its in-place changes are tracked


def tril(x, diagonal=0):
    """Keep the lower triangle (j <= i + diagonal) of the last two dims, zero the rest."""
    xp = backend.of(x.data)
    n, m = x.shape[-2:]
    keep = xp.tril(xp.ones((n, m), dtype=bool), k=diagonal)
    return masked_fill(x, ~keep, 0)


def triu(x, diagonal=0):
    """Keep the upper triangle (j >= i + diagonal) of the last two dims, zero the rest."""
    xp = backend.of(x.data)
    n, m = x.shape[-2:]
    keep = xp.triu(xp.ones((n, m), dtype=bool), k=diagonal)
    return masked_fill(x, ~keep, 0)
