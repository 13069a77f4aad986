"""Shape ops: the same numbers, rearranged. Their backward rearranges the gradient back.

    reshape flatten unsqueeze squeeze     reshape back
    permute transpose                     the inverse permutation
    expand                                sum over the copies (the engine's unbroadcast)
    repeat                                sum over the tiles
    flip roll                             flip back, roll by -shift
    cat stack / split chunk unbind narrow cut the gradient where the inputs were joined / pad it

    >>> x = tinyllm.arange(6).reshape(2, 3)          # (2, 3)
    >>> x.transpose(0, 1).shape, x.repeat(2, 1).shape, x.flip(1).tolist()
    ((3, 2), (4, 3), [[2, 1, 0], [5, 4, 3]])
"""

from __future__ import annotations

import builtins

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.ops.common import axis, shape_arg, tensor_arg
from tinyllm.ops.indexing import getitem


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad_out):
        # reshaping moves no numbers: reshape the gradient back
        return grad_out.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad_out):
        # undo the permutation with its inverse
        return grad_out.transpose(np.argsort(ctx.dims).tolist())


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return backend.of(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad_out):
        # each input element was copied to many places: unbroadcast sums their gradients
        return grad_out


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, reps):
        ctx.shape, ctx.reps = x.shape, reps
        return backend.of(x).tile(x, reps)

    @staticmethod
    def backward(ctx, grad_out):
        # each element was copied once per tile: (r0·s0, r1·s1, ...) -> (r0, s0, r1, s1, ...), sum the r's
        shape = (1,) * (len(ctx.reps) - len(ctx.shape)) + tuple(ctx.shape)  # x's shape, padded to len(reps)
        split = [n for r, s in zip(ctx.reps, shape) for n in (r, s)]
        g = grad_out.reshape(split).sum(axis=tuple(range(0, 2 * len(shape), 2)))
        return g.reshape(ctx.shape)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return backend.of(x).flip(x, axis=dims)

    @staticmethod
    def backward(ctx, grad_out):
        # a flip is its own inverse
        return backend.of(grad_out).flip(grad_out, axis=ctx.dims)


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return backend.of(x).roll(x, shifts, axis=dims)

    @staticmethod
    def backward(ctx, grad_out):
        # roll by s moves element i to i + s: roll the gradient by -s
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return backend.of(grad_out).roll(grad_out, neg, axis=ctx.dims)


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.dim, ctx.sizes = dim, [a.shape[dim] for a in arrays]
        return backend.of(*arrays).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad_out):
        # concatenation places inputs side by side: cut the gradient at the same places
        xp = backend.of(grad_out)
        cuts = np.cumsum(ctx.sizes)[:-1].tolist()
        return tuple(xp.split(grad_out, cuts, axis=ctx.dim))


def reshape(x, *shape):
    return Reshape.apply(x, shape=shape_arg(shape))


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = axis(start_dim, x.ndim), axis(end_dim, x.ndim)
    merged = int(np.prod(x.shape[s:e + 1]))  # subtle: not -1, which is ambiguous when another dim is 0
    return reshape(x, *x.shape[:s], merged, *x.shape[e + 1:])


def permute(x, *dims):
    dims = tuple(axis(d, x.ndim) for d in shape_arg(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute needs a permutation of 0..{x.ndim - 1}, got {dims}")
    return Permute.apply(x, dims=dims)


def transpose(x, dim0, dim1):
    """Swap two dimensions (torch.transpose)."""
    dims = list(range(x.ndim))
    a, b = axis(dim0, x.ndim), axis(dim1, x.ndim)
    dims[a], dims[b] = dims[b], dims[a]
    return Permute.apply(x, dims=tuple(dims))


def expand(x, *sizes):
    """Broadcast size-1 dims (and new leading dims) to `sizes` without copying; -1 keeps a size."""
    sizes = shape_arg(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes for a tensor of {x.ndim} dims; give at least {x.ndim}")
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
    return Expand.apply(x, shape=shape)


def unsqueeze(x, dim):
    dim = axis(dim, x.ndim + 1)
    return reshape(x, *x.shape[:dim], 1, *x.shape[dim:])


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, *[n for n in x.shape if n != 1])
    dim = axis(dim, x.ndim)
    if x.ndim == 0 or x.shape[dim] != 1:
        return x
    return reshape(x, *x.shape[:dim], *x.shape[dim + 1:])


def repeat(x, *sizes):
    """Tile x: repeat(x, 2, 1) stacks two copies along dim 0 (torch.Tensor.repeat, NumPy's tile)."""
    sizes = shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: give at least one count per dim ({x.ndim}), got {sizes}")
    return Repeat.apply(x, reps=sizes)


def flip(x, dims):
    """Reverse the order along `dims` (an int or a tuple)."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return Flip.apply(x, dims=tuple(axis(d, x.ndim) for d in dims))


def roll(x, shifts, dims=None):
    """Shift elements along `dims` cyclically; dims None rolls the flattened tensor (torch.roll)."""
    if dims is None:
        return Roll.apply(x.reshape(-1), shifts=shifts, dims=0).reshape(x.shape)
    if isinstance(dims, int):
        return Roll.apply(x, shifts=shifts, dims=axis(dims, x.ndim))
    return Roll.apply(x, shifts=tuple(shifts), dims=tuple(axis(d, x.ndim) for d in dims))


def cat(tensors, dim=0):
    tensors = [tensor_arg(t) for t in tensors]
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    return Cat.apply(*tensors, dim=axis(dim, tensors[0].ndim))


def stack(tensors, dim=0):
    tensors = [tensor_arg(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    dim = axis(dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def _slice_along(dim, start, stop):
    return (slice(None),) * dim + (slice(start, stop),)


def split(x, split_size_or_sections, dim=0):
    """torch.split: chunks of size `split_size` (the last may be smaller) or the given sizes."""
    dim = axis(dim, x.ndim)
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections or not n:  # an empty dim still gives one (empty) piece, as torch
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to dimension {dim} of size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, _slice_along(dim, start, start + s)))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    """torch.chunk: pieces of ceil(n / chunks) along `dim` (so maybe fewer than `chunks`); an empty dim
    gives `chunks` empty pieces, as torch."""
    if chunks <= 0:
        raise ValueError(f"chunk expects a positive number of chunks, got {chunks}")
    n = x.shape[axis(dim, x.ndim)]
    return split(x, -(-n // chunks) if n else [0] * chunks, dim)


def unbind(x, dim=0):
    """The slices along `dim`, each without that dim: unbind((3, 4), 0) -> three (4,) tensors."""
    dim = axis(dim, x.ndim)
    return tuple(getitem(x, (slice(None),) * dim + (i,)) for i in range(x.shape[dim]))


def narrow(x, dim, start, length):
    """x's elements start .. start+length-1 along `dim` (a view in torch; a slice here)."""
    dim = axis(dim, x.ndim)
    n = x.shape[dim]
    start = start + n if start < 0 else start
    if not (0 <= start <= n and 0 <= length <= n - start):
        raise IndexError(f"narrow: start {start} and length {length} out of range for dim {dim} of size {n}")
    return getitem(x, _slice_along(dim, start, start + length))
