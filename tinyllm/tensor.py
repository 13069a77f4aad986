"""Tensor: an array that remembers how it was made.

A Tensor holds

    data           a raw array (NumPy, CuPy or strict) — the value
    grad           a Tensor with dL/d(this), filled in by backward (no graph)
    requires_grad  whether gradients should flow to it
    grad_fn        the Function instance that made it (None for a leaf)

``loss.backward()`` hands the graph to the engine in ``tinyllm/autograd.py``
(topological order, gradient accumulation, buffer ownership). This file is
the Tensor's face: properties, conversions, and the operator table — every
method and operator written out as a one-line call into ``tinyllm.ops`` (no
generated methods, no monkey patching), in the order of ``ops/__init__.py``.
That table is why the file runs past ~300 lines: it is a list to look things
up in, not logic to hold in one's head.

Example:
    >>> a = tinyllm.tensor([2.0, 3.0], requires_grad=True)
    >>> y = (a * a).sum()          # y = a0² + a1²
    >>> y.grad_fn
    <tinyllm.ops.reductions.Sum object at ...>
    >>> y.backward()
    >>> a.grad                     # dy/da = 2a
    tensor([4., 6.])
"""

from __future__ import annotations

import numpy as np

from tinyllm import autograd, backend
from tinyllm.autograd import enable_grad, is_grad_enabled, no_grad, zero_grads  # noqa: F401  (re-exported)


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain_grad", "_version", "__weakref__")
    __array_priority__ = 1000  # numpy_array * tensor -> Tensor.__rmul__, not NumPy

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, np.generic):
            data = np.asarray(data)  # subtle: NumPy reductions return host scalars; keep them on 'cpu'
        elif not backend.is_array(data):
            data = backend.asarray(data)
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self._ctx = None  # the Function that made this tensor (public as grad_fn)
        self._retain_grad = False
        self._version = 0  # in-place updates so far (see Function.check_versions)

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def grad_fn(self):
        """The Function that made this tensor (its ``inputs`` lead further back); None for a leaf."""
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
        extra = f", size={self.shape}" if self.data.size == 0 and self.shape != (0,) else ""  # as torch
        if self.dtype not in (np.float32, np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device={self.device!r}"
        if self._ctx is not None:
            extra += f", grad_fn=<{type(self._ctx).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                               "use .any() or .all()")
        return bool(self.data.item())

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """A NumPy copy on the host (an explicit transfer; refuses a tensor that needs grad)."""
        if self.requires_grad:
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use .detach().numpy()")
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def detach(self) -> "Tensor":
        """The same data, cut out of the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self._ctx is not None and not requires_grad:
            raise RuntimeError("can't turn off requires_grad of a non-leaf tensor; use .detach()")
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf tensor after backward (leaves always keep it)."""
        self._retain_grad = True

    def to(self, device_or_dtype) -> "Tensor":
        """Move to a device ('cpu', 'cuda', 'strict') or cast to a dtype (differentiable)."""
        if isinstance(device_or_dtype, str) and device_or_dtype in backend.DEVICES:
            if device_or_dtype == self.device:
                return self
            return ops.to_device(self, device_or_dtype)
        return self.astype(device_or_dtype)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def astype(self, dtype):
        return ops.astype(self, dtype)

    def type_as(self, other):
        return ops.astype(self, other.dtype)

    def float(self):
        return ops.astype(self, np.float32)

    def double(self):
        return ops.astype(self, np.float64)

    def long(self):
        return ops.astype(self, np.int64)

    def bool(self):
        return ops.astype(self, np.bool_)

    def contiguous(self):
        return self

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Fill .grad of every leaf that requires grad with d(self)/d(leaf), accumulating.

        `grad` is dL/d(self); it may be omitted for a one-element tensor (then 1).
        The work is done by ``tinyllm.autograd.backward``.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for one-element outputs, "
                                   f"got shape {self.shape}")
            grad = backend.of(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else backend.asarray(grad, device=self.device)
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {grad.shape}, expected {self.shape}")
        autograd.backward(self, grad, retain_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ in place
    # Allowed under no_grad, or on tensors that don't require grad. Each bumps _version,
    # so a backward that saved this array refuses to use it afterwards (as torch does).
    def _inplace(self):
        if is_grad_enabled() and self.requires_grad:
            raise RuntimeError("in-place update of a tensor that requires grad; wrap it in tinyllm.no_grad() "
                               "or use the out-of-place op (x = x + y)")
        self._version += 1

    def add_(self, other, alpha=1):
        self._inplace()
        self.data += _raw(other) * alpha if alpha != 1 else _raw(other)
        return self

    def sub_(self, other, alpha=1):
        self._inplace()
        self.data -= _raw(other) * alpha if alpha != 1 else _raw(other)
        return self

    def mul_(self, other):
        self._inplace()
        self.data *= _raw(other)
        return self

    def div_(self, other):
        self._inplace()
        self.data /= _raw(other)
        return self

    def clamp_(self, min=None, max=None):  # noqa: A002 - torch's argument names
        self._inplace()
        with no_grad():
            self.data[...] = ops.clamp(self, min, max).data
        return self

    def masked_fill_(self, mask, value):
        self._inplace()
        self.data[...] = backend.of(self.data).where(_raw(mask), self.dtype.type(_raw(value)), self.data)
        return self

    def copy_(self, src):
        """Copy src's values in (broadcast, cast to this dtype, moved from src's device, as torch)."""
        self._inplace()
        if isinstance(src, Tensor) and src.device != self.device:
            src = backend.asarray(src.data, device=self.device)
        self.data[...] = _raw(src)
        return self

    def fill_(self, value):
        self._inplace()
        self.data[...] = _raw(value)
        return self

    def zero_(self):
        return self.fill_(0)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __pow__(self, exponent):
        return ops.pow(self, exponent)

    def __rpow__(self, base):
        return ops.pow(base, self)

    def __neg__(self):
        return ops.neg(self)

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, key):
        return ops.getitem(self, key)

    # comparisons: bool tensors, no graph
    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    __hash__ = object.__hash__  # tensors are dict keys by identity, as in PyTorch (== compares elements)

    def lt(self, other):
        return ops.lt(self, other)

    def le(self, other):
        return ops.le(self, other)

    def gt(self, other):
        return ops.gt(self, other)

    def ge(self, other):
        return ops.ge(self, other)

    def eq(self, other):
        return ops.eq(self, other)

    def ne(self, other):
        return ops.ne(self, other)

    # ------------------------------------------------------------------ arithmetic (ops/arithmetic.py)
    def add(self, other):
        return ops.add(self, other)

    def sub(self, other):
        return ops.sub(self, other)

    def mul(self, other):
        return ops.mul(self, other)

    def div(self, other):
        return ops.div(self, other)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def maximum(self, other):
        return ops.maximum(self, other)

    def minimum(self, other):
        return ops.minimum(self, other)

    def clamp(self, min=None, max=None):  # noqa: A002 - torch's argument names
        return ops.clamp(self, min, max)

    def clip(self, min=None, max=None):  # noqa: A002
        return ops.clamp(self, min, max)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    # ------------------------------------------------------------------ elementwise (ops/unary.py)
    def neg(self):
        return ops.neg(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def rsqrt(self):
        return ops.rsqrt(self)

    def square(self):
        return ops.square(self)

    def reciprocal(self):
        return ops.reciprocal(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def softplus(self, beta=1.0, threshold=20.0):
        return ops.softplus(self, beta, threshold)

    def relu(self):
        return ops.relu(self)

    def abs(self):
        return ops.abs(self)

    # ------------------------------------------------------------------ special functions, steps (ops/special.py)
    def sin(self):
        return ops.sin(self)

    def cos(self):
        return ops.cos(self)

    def log1p(self):
        return ops.log1p(self)

    def expm1(self):
        return ops.expm1(self)

    def erf(self):
        return ops.erf(self)

    def floor(self):
        return ops.floor(self)

    def round(self):
        return ops.round(self)

    def sign(self):
        return ops.sign(self)

    def trunc(self):
        return ops.trunc(self)

    # ------------------------------------------------------------------ products (ops/linalg.py)
    def matmul(self, other):
        return ops.matmul(self, other)

    def bmm(self, other):
        return ops.bmm(self, other)

    def outer(self, other):
        return ops.outer(self, other)

    # ------------------------------------------------------------------ reductions (ops/reductions.py)
    def sum(self, dim=None, keepdim=False):
        return ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return ops.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, correction=1, unbiased=None):
        return ops.var(self, dim, keepdim, correction, unbiased)

    def std(self, dim=None, keepdim=False, correction=1, unbiased=None):
        return ops.std(self, dim, keepdim, correction, unbiased)

    def amax(self, dim=None, keepdim=False):
        return ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return ops.amin(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return ops.min(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def norm(self, p=2, dim=None, keepdim=False):
        return ops.norm(self, p, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return ops.logsumexp(self, dim, keepdim)

    def softmax(self, dim):
        """exp(x - logsumexp(x)) composed from primitives; F.softmax is the same function, fused."""
        return ops.exp(self.log_softmax(dim))

    def log_softmax(self, dim):
        """x - logsumexp(x) composed from primitives; F.log_softmax is the same function, fused."""
        return ops.sub(self, ops.logsumexp(self, dim, keepdim=True))

    def prod(self, dim=None, keepdim=False):
        return ops.prod(self, dim, keepdim)

    def cumsum(self, dim):
        return ops.cumsum(self, dim)

    def all(self, dim=None, keepdim=False):
        return ops.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return ops.any(self, dim, keepdim)

    # ------------------------------------------------------------------ indexing (ops/indexing.py)
    def gather(self, dim, index):
        return ops.gather(self, dim, index)

    def scatter_add(self, dim, index, src):
        return ops.scatter_add(self, dim, index, src)

    def index_select(self, dim, index):
        return ops.index_select(self, dim, index)

    def take_along_dim(self, indices, dim=None):
        return ops.take_along_dim(self, indices, dim)

    def tril(self, diagonal=0):
        return ops.tril(self, diagonal)

    def triu(self, diagonal=0):
        return ops.triu(self, diagonal)

    # ------------------------------------------------------------------ sorting (ops/sorting.py)
    def sort(self, dim=-1, descending=False, stable=False):
        return ops.sort(self, dim, descending, stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        return ops.argsort(self, dim, descending, stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002
        return ops.topk(self, k, dim, largest, sorted)

    # ------------------------------------------------------------------ shape (ops/shape.py)
    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        return ops.reshape(self, *shape)

    def reshape_as(self, other):
        return ops.reshape(self, other.shape)

    def view_as(self, other):
        return ops.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    def permute(self, *dims):
        return ops.permute(self, *dims)

    @property
    def T(self):
        return ops.permute(self, *reversed(range(self.ndim)))

    def expand(self, *sizes):
        return ops.expand(self, *sizes)

    def expand_as(self, other):
        return ops.expand(self, other.shape)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def repeat(self, *sizes):
        return ops.repeat(self, *sizes)

    def flip(self, dims):
        return ops.flip(self, dims)

    def roll(self, shifts, dims=None):
        return ops.roll(self, shifts, dims)

    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return ops.unbind(self, dim)

    def narrow(self, dim, start, length):
        return ops.narrow(self, dim, start, length)

    # ------------------------------------------------------------------ new tensors like this one
    def new_zeros(self, *size, dtype=None):
        return self.new_full(size, 0, dtype=dtype)

    def new_ones(self, *size, dtype=None):
        return self.new_full(size, 1, dtype=dtype)

    def new_full(self, size, fill_value, dtype=None):
        """A tensor of `size` filled with `fill_value`, with this tensor's dtype and device (no graph)."""
        size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        xp = backend.of(self.data)
        return Tensor(xp.full(size, fill_value, dtype=np.dtype(dtype) if dtype is not None else self.dtype))


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


from tinyllm import ops  # noqa: E402  (ops builds on Tensor; Tensor's operators call ops)
