"""The primitive operations: one Function class and one lowercase wrapper each.

Every op computes on raw arrays of its inputs' own module (``xp = backend.of(x)``),
so the same code runs on NumPy, CuPy and the strict test device. Each backward
opens with the derivative it implements. Broadcasting is undone by
``Tensor.backward`` (see ``tensor.unbroadcast``), so a backward may return a
gradient of the broadcast shape.

Index (in the order a course meets them):
    elementwise   add sub mul div neg pow exp log sqrt tanh relu abs maximum where
    linear        matmul
    reductions    sum mean var amax (max, argmax)
    shape         reshape flatten transpose permute expand unsqueeze squeeze
    indexing      getitem (slices, integer arrays) cat stack split chunk
    masks         masked_fill tril triu
    types         astype to_device
"""

from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.tensor import IndexGrad, Tensor


def _t(x, like=None):
    """An operand of a binary op: Tensors pass; Python scalars stay scalars (so float32 stays
    float32 under NumPy 2's promotion); anything else becomes a constant Tensor on the device of
    `like` (the other operand), floats in its float dtype, so `x + [1.0, 2.0]` neither leaves x's
    device nor upcasts it. Arrays stay on their own device."""
    if isinstance(x, Tensor) or type(x) in (int, float, bool):
        return x
    if isinstance(x, np.generic) and not backend.is_array(x):
        return x.item()  # subtle: np.float64(2) is a *strong* float64 in NumPy 2; as a Python float it is weak
    if backend.is_array(x):  # an array stays where it is: mixing devices fails in the op, as in torch
        return Tensor(x)
    if isinstance(like, Tensor):  # lists and nested sequences: constants on the other operand's device
        dtype = like.dtype if np.asarray(x).dtype.kind == "f" and like.dtype.kind == "f" else None
        return Tensor(backend.asarray(x, dtype=dtype, device=like.device))
    return Tensor(backend.asarray(x))


def _pair(a, b):
    """Both operands of a binary op, each made a Tensor/scalar relative to the other."""
    return _t(a, b if isinstance(b, Tensor) else None), _t(b, a if isinstance(a, Tensor) else None)


def _norm_dims(dim, ndim):
    """dim (None | int | tuple) -> a tuple of non-negative axes (None: all)."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % ndim if ndim else 0 for d in dim)


# ============================================================================ elementwise


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a+b)/da = 1, d(a+b)/db = 1
        return grad_out, grad_out


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a-b)/da = 1, d(a-b)/db = -1
        return grad_out, -grad_out


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a*b)/da = b, d(a*b)/db = a
        a, b = ctx.saved
        n = ctx.needs_input_grad
        return (grad_out * b if n[0] else None), (grad_out * a if n[1] else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad_out):
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b²
        a, b = ctx.saved
        n = ctx.needs_input_grad
        grad_a = grad_out / b if n[0] else None
        grad_b = -grad_out * a / (b * b) if n[1] else None
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad_out):
        # d(-x)/dx = -1
        return -grad_out


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = a**b
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(a^b)/da = b·a^(b-1),  d(a^b)/db = a^b·ln(a)
        a, b, out = ctx.saved
        n = ctx.needs_input_grad
        grad_a = grad_out * b * a ** (b - 1) if n[0] else None
        grad_b = None
        if n[1]:
            xp = backend.of(out)
            a = xp.asarray(a, dtype=out.dtype)  # `a` may be a Python scalar (2 ** x); CuPy's where needs arrays
            log_a = xp.log(xp.where(a > 0, a, out.dtype.type(1)))  # subtle: 0 where a <= 0 (PyTorch: NaN for a < 0)
            grad_b = grad_out * out * log_a
        return grad_a, grad_b


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(e^x)/dx = e^x
        (out,) = ctx.saved
        return grad_out * out


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).log(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d(ln x)/dx = 1/x
        (x,) = ctx.saved
        return grad_out / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(√x)/dx = 1/(2√x)
        (out,) = ctx.saved
        return grad_out / (2 * out)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(tanh x)/dx = 1 - tanh²x
        (out,) = ctx.saved
        return grad_out * (1 - out * out)


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        out = backend.of(x).maximum(x, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # d(max(x,0))/dx = 1 if x > 0 else 0
        (out,) = ctx.saved
        return grad_out * (out > 0)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.of(x).abs(x)

    @staticmethod
    def backward(ctx, grad_out):
        # d|x|/dx = sign(x)  (0 at 0, as PyTorch)
        (x,) = ctx.saved
        return grad_out * backend.of(x).sign(x)


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return backend.of(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx, grad_out):
        # the larger input gets the gradient; on a tie each gets half (as PyTorch)
        a, b = ctx.saved
        share_a = (a > b) + 0.5 * (a == b)
        share_a = share_a.astype(grad_out.dtype)
        return grad_out * share_a, grad_out * (1 - share_a)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return backend.of(cond).where(cond, a, b)

    @staticmethod
    def backward(ctx, grad_out):
        # where(c, a, b): the gradient goes to a where c is true, to b elsewhere
        (cond,) = ctx.saved
        zero = grad_out.dtype.type(0)
        xp = backend.of(grad_out)
        return None, xp.where(cond, grad_out, zero), xp.where(cond, zero, grad_out)


def add(a, b):
    return Add.apply(*_pair(a, b))


def sub(a, b):
    return Sub.apply(*_pair(a, b))


def mul(a, b):
    return Mul.apply(*_pair(a, b))


def div(a, b):
    return Div.apply(*_pair(a, b))


def neg(x):
    return Neg.apply(x)


def pow(a, b):  # noqa: A001 - the PyTorch name
    return Pow.apply(*_pair(a, b))


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def tanh(x):
    return Tanh.apply(x)


def relu(x):
    return ReLU.apply(x)


def abs(x):  # noqa: A001
    return Abs.apply(x)


def maximum(a, b):
    return Maximum.apply(*_pair(a, b))


def where(condition, a, b):
    """Elementwise `a if condition else b`; `condition` is a bool array or Tensor (no gradient)."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    return Where.apply(cond, *_pair(a, b))


# ============================================================================ matmul


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad_out):
        # C = A @ B:  dL/dA = dL/dC @ Bᵀ,  dL/dB = Aᵀ @ dL/dC  (batch dims summed by unbroadcast)
        a, b = ctx.saved
        g = grad_out
        a2 = a[None, :] if a.ndim == 1 else a  # (K,) -> (1, K)
        b2 = b[:, None] if b.ndim == 1 else b  # (K,) -> (K, 1)
        if b.ndim == 1:  # subtle: this one first, so that (K,) @ (K,) -> () works: () -> (1,) -> (1, 1)
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        n = ctx.needs_input_grad
        grad_a = grad_b = None
        if n[0]:
            grad_a = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a.reshape(-1, a.shape[0]).sum(axis=0)
        if n[1]:
            grad_b = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                grad_b = grad_b.reshape(-1, b.shape[0]).sum(axis=0)
        return grad_a, grad_b


def matmul(a, b):
    """Matrix product with NumPy/PyTorch broadcasting of batch dimensions."""
    return MatMul.apply(_t(a), _t(b))


# ============================================================================ reductions


def _expand_back(grad, shape, axes, keepdim):
    """Undo a reduction over `axes`: reinsert the reduced dims and broadcast to `shape`."""
    xp = backend.of(grad)
    if not keepdim:
        grad = grad.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return xp.broadcast_to(grad, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # d(Σ x)/dx_i = 1: each input gets the gradient of the sum it fed
        return _expand_back(grad_out, ctx.shape, ctx.axes, ctx.keepdim)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.count = int(np.prod([x.shape[a] for a in axes]))
        return x.mean(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad_out):
        # d(mean x)/dx_i = 1/N
        grad = grad_out / grad_out.dtype.type(ctx.count)
        return _expand_back(grad, ctx.shape, ctx.axes, ctx.keepdim)


class Var(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim, correction):
        n = int(np.prod([x.shape[a] for a in axes]))
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        ctx.save_for_backward(centered)
        ctx.axes, ctx.keepdim, ctx.denom = axes, keepdim, builtins.max(n - correction, 0)
        denom = x.dtype.type(ctx.denom if ctx.denom else np.nan)  # N <= correction: NaN, as torch
        return (centered * centered).sum(axis=axes, keepdims=keepdim) / denom

    @staticmethod
    def backward(ctx, grad_out):
        # var = Σ (x_i - m)² / (N - c)  ->  dvar/dx_i = 2 (x_i - m) / (N - c)   (the m-terms sum to 0)
        (centered,) = ctx.saved
        grad = _expand_back(grad_out, centered.shape, ctx.axes, ctx.keepdim)
        scale = 2.0 / ctx.denom if ctx.denom else float("nan")  # N <= correction: undefined, NaN as torch
        return grad * centered * centered.dtype.type(scale)


class Amax(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        out = x.max(axis=axes, keepdims=True)
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return out if keepdim else out.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    @staticmethod
    def backward(ctx, grad_out):
        # d(max x)/dx_i = 1 at the maximum, 0 elsewhere; ties share it evenly (as torch.amax)
        x, out = ctx.saved
        is_max = (x == out).astype(grad_out.dtype)
        count = is_max.sum(axis=ctx.axes, keepdims=True)
        grad = _expand_back(grad_out, x.shape, ctx.axes, ctx.keepdim)
        return grad * is_max / count


def sum(x, dim=None, keepdim=False):  # noqa: A001
    return Sum.apply(x, axes=_norm_dims(dim, x.ndim), keepdim=keepdim)


def mean(x, dim=None, keepdim=False):
    return Mean.apply(x, axes=_norm_dims(dim, x.ndim), keepdim=keepdim)


def var(x, dim=None, keepdim=False, correction=1, unbiased=None):
    """Variance with Bessel's correction by default (``correction=1``), as torch.var."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var.apply(x, axes=_norm_dims(dim, x.ndim), keepdim=keepdim, correction=correction)


def amax(x, dim=None, keepdim=False):
    return Amax.apply(x, axes=_norm_dims(dim, x.ndim), keepdim=keepdim)


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def max(x, dim=None, keepdim=False):  # noqa: A001
    """Like torch.max: the overall maximum, or (values, indices) along `dim`."""
    if dim is None:
        return amax(x)
    return MaxResult(amax(x, dim, keepdim), argmax(x, dim, keepdim))


def argmax(x, dim=None, keepdim=False):
    """Index of the maximum (no gradient); the flat index when dim is None."""
    data = x.data if isinstance(x, Tensor) else x
    if dim is None:
        out = data.reshape(-1).argmax()
        return Tensor(out.reshape((1,) * data.ndim) if keepdim else out)
    out = data.argmax(axis=dim)
    return Tensor(backend.of(out).expand_dims(out, dim) if keepdim else out)


# ============================================================================ shape


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


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def reshape(x, *shape):
    return Reshape.apply(x, shape=_shape_arg(shape))


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return reshape(x, *x.shape[:s], -1, *x.shape[e + 1:])


def permute(x, *dims):
    dims = tuple(d % x.ndim for d in _shape_arg(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute needs a permutation of 0..{x.ndim - 1}, got {dims}")
    return Permute.apply(x, dims=dims)


def transpose(x, dim0, dim1):
    """Swap two dimensions (torch.transpose)."""
    dims = list(range(x.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return Permute.apply(x, dims=tuple(dims))


def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(sizes))
    return Expand.apply(x, shape=shape)


def unsqueeze(x, dim):
    dim = dim % (x.ndim + 1)
    return reshape(x, *x.shape[:dim], 1, *x.shape[dim:])


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, *[n for n in x.shape if n != 1])
    dim = dim % x.ndim
    if x.shape[dim] != 1:
        return x
    return reshape(x, *x.shape[:dim], *x.shape[dim + 1:])


# ============================================================================ indexing and joining


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
        ctx.shape, ctx.dtype, ctx.key = x.shape, x.dtype, key
        return x[key]

    @staticmethod
    def backward(ctx, grad_out):
        # each selected element gets its output's gradient, the rest 0; an element
        # picked several times (integer arrays) gets the sum: a scatter-add.
        # IndexGrad says just that; Tensor.backward writes it into one buffer per input.
        return IndexGrad(ctx.key, grad_out, _is_advanced(ctx.key))


def getitem(x, key):
    return GetItem.apply(x, key=_raw_key(key))


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


def cat(tensors, dim=0):
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    return Cat.apply(*tensors, dim=dim % tensors[0].ndim)


def stack(tensors, dim=0):
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    dim = dim % (tensors[0].ndim + 1)
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(x, split_size_or_sections, dim=0):
    """torch.split: chunks of size `split_size` (the last may be smaller) or the given sizes."""
    dim = dim % x.ndim
    n = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} do not add up to dimension {dim} of size {n}")
    out, start = [], 0
    for s in sizes:
        key = (slice(None),) * dim + (slice(start, start + s),)
        out.append(getitem(x, key))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    n = x.shape[dim % x.ndim]
    return split(x, -(-n // chunks), dim)


# ============================================================================ masks


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
    """Where `mask` (bool, broadcastable to x) is true, replace by `value`."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    return MaskedFill.apply(x, mask, value=value)


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


# ============================================================================ types and devices


class AsType(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad_out):
        # a cast is the identity on values: cast the gradient back
        return grad_out.astype(ctx.dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.device = backend.device_of(x)
        return backend.asarray(x, device=device)

    @staticmethod
    def backward(ctx, grad_out):
        # a copy between devices is the identity: copy the gradient back
        return backend.asarray(grad_out, device=ctx.device)


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return AsType.apply(x, dtype=dtype)


def to_device(x, device):
    return ToDevice.apply(x, device=device)
