"""Tensor: an array that remembers how it was made, and reverse-mode backward.

A Tensor holds

    data           a raw array (NumPy, CuPy or strict) — the value
    grad           a Tensor with dL/d(this), filled in by backward (no graph)
    requires_grad  whether gradients should flow to it
    _ctx           the Function instance that made it (None for a leaf)

Calling ``loss.backward()`` applies the chain rule backwards through the
graph of Functions, in reverse topological order:

    dL/dx = sum over every use y = f(..., x, ...) of  f.backward(dL/dy)

The order is found by an iterative depth-first search (no recursion, so a
10,000-op chain works), each node's gradient is complete before it is passed
on, and gradients of leaves *accumulate* in ``.grad`` across calls, as in
PyTorch. The graph is freed after backward unless ``retain_graph=True``.

Example:
    >>> a = tinyllm.tensor([2.0, 3.0], requires_grad=True)
    >>> y = (a * a).sum()          # y = a0² + a1²
    >>> y.backward()
    >>> a.grad                     # dy/da = 2a
    tensor([4., 6.])
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from tinyllm import backend

_grad_enabled = contextvars.ContextVar("tinyllm_grad_enabled", default=True)


def is_grad_enabled() -> bool:
    return _grad_enabled.get()


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._tokens = []

    def __enter__(self):
        self._tokens.append(_grad_enabled.set(self.enabled))
        return self

    def __exit__(self, *exc):
        _grad_enabled.reset(self._tokens.pop())
        return False


def no_grad():
    """Context manager / decorator: ops inside record no graph (inference, optimizer steps)."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


def unbroadcast(grad, shape):
    """Sum a gradient of a broadcast shape back to `shape`.

    If x of shape (3, 1) was broadcast to (2, 3, 4) in the forward pass, each
    x element was used 2*4 times, so its gradient is the sum over those uses:

        unbroadcast(ones((2, 3, 4)), (3, 1)) -> full((3, 1), 8.)
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class IndexGrad:
    """The gradient of x[key]'s input: zero everywhere except at x[key], where it is `values`.

    GetItem's backward returns one instead of a full-size array of zeros, and
    backward adds it into a single buffer per input. Splitting qkv into q, k, v
    then costs one zero-filled buffer and three slice writes, not three
    full-size zero arrays and two full-size additions.
    """

    __slots__ = ("key", "values", "advanced")

    def __init__(self, key, values, advanced: bool):
        self.key, self.values, self.advanced = key, values, advanced

    def add_to(self, buf) -> None:
        """buf[key] += values; integer-array keys may repeat a position, so they scatter-add."""
        if self.advanced:
            backend.scatter_add(buf, self.key, self.values)
        else:
            buf[self.key] += self.values


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain_grad", "__weakref__")
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
        self._ctx = None
        self._retain_grad = False

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
    def is_leaf(self) -> bool:
        return self._ctx is None

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype not in (np.float32, np.int64, np.bool_):
            extra += f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device={self.device!r}"
        if self._ctx is not None:
            extra += f", grad_fn=<{type(self._ctx).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

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

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Fill .grad of every leaf that requires grad with d(self)/d(leaf), accumulating.

        `grad` is dL/d(self); it may be omitted for a one-element tensor (then 1).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (was it made under no_grad?)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for one-element outputs, got shape {self.shape}")
            grad = backend.of(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else backend.asarray(grad, device=self.device)
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {grad.shape}, expected {self.shape}")

        order = _topological_order(self)
        # grads[id(t)] = [array, owned]: an owned array was allocated here, so later
        # contributions may be added into it in place (a borrowed one may be shared)
        grads = {id(self): [grad, False]}
        for t in reversed(order):  # outputs before inputs
            entry = grads.pop(id(t), None)
            if entry is None:
                continue
            g, owned = entry
            ctx = t._ctx
            if ctx is None or t._retain_grad:  # a leaf (or asked to keep it): accumulate
                if t.grad is None:  # subtle: copy a borrowed array, it may be another tensor's gradient too
                    t.grad = Tensor(g if owned and ctx is None else g.copy())
                else:
                    t.grad = Tensor(t.grad.data + g)
                if ctx is None:
                    continue
            if ctx.freed:
                raise RuntimeError(
                    "trying to backward through the graph a second time; the saved arrays were "
                    "freed after the first backward. Pass retain_graph=True the first time."
                )
            in_grads = type(ctx).backward(ctx, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for x, gx, needed in zip(ctx.inputs, in_grads, ctx.needs_input_grad):
                if not needed or gx is None:
                    continue
                entry = grads.get(id(x))
                if isinstance(gx, IndexGrad):  # zero except at x[key]: write into one owned buffer
                    if entry is None or not entry[1]:
                        buf = backend.of(gx.values).zeros(x.shape, x.dtype) if entry is None \
                            else entry[0].astype(x.dtype, copy=True)
                        entry = grads[id(x)] = [buf, True]
                    gx.add_to(entry[0])
                    continue
                if gx.shape != x.shape:
                    gx = unbroadcast(gx, x.shape)
                if gx.dtype != x.dtype:  # subtle: float32 * float64 -> the gradient keeps its input's dtype, as torch
                    gx = gx.astype(x.dtype)
                if entry is None:
                    grads[id(x)] = [gx, False]
                elif entry[1]:
                    entry[0] += gx
                else:
                    grads[id(x)] = [entry[0] + gx, True]
            if not retain_graph:
                ctx.inputs, ctx.saved, ctx.freed = (), (), True

    def zero_grad(self) -> None:
        self.grad = None

    # ------------------------------------------------------------------ operators
    # Written out one by one (no generated methods): each is a call into ops.
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

    # comparisons give bool tensors without a graph
    def __lt__(self, other):
        return Tensor(self.data < _raw(other))

    def __le__(self, other):
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor(self.data >= _raw(other))

    def eq(self, other):
        return Tensor(self.data == _raw(other))

    def ne(self, other):
        return Tensor(self.data != _raw(other))

    __hash__ = object.__hash__  # tensors are used as dict keys by identity, like PyTorch

    # in-place updates for optimizers; allowed only on leaves or under no_grad
    def _check_inplace(self):
        if is_grad_enabled() and self.requires_grad:
            raise RuntimeError("in-place update of a tensor that requires grad; wrap it in tinyllm.no_grad()")

    def __iadd__(self, other):
        self._check_inplace()
        self.data += _raw(other)
        return self

    def __isub__(self, other):
        self._check_inplace()
        self.data -= _raw(other)
        return self

    def __imul__(self, other):
        self._check_inplace()
        self.data *= _raw(other)
        return self

    def __itruediv__(self, other):
        self._check_inplace()
        self.data /= _raw(other)
        return self

    def copy_(self, other) -> "Tensor":
        self._check_inplace()
        src = _raw(other)
        self.data[...] = src
        return self

    def fill_(self, value) -> "Tensor":
        self._check_inplace()
        self.data[...] = value
        return self

    # ------------------------------------------------------------------ methods (PyTorch names)
    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def relu(self):
        return ops.relu(self)

    def abs(self):
        return ops.abs(self)

    def sum(self, dim=None, keepdim=False):
        return ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return ops.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, correction=1, unbiased=None):
        return ops.var(self, dim, keepdim, correction, unbiased)

    def amax(self, dim=None, keepdim=False):
        return ops.amax(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return ops.max(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        return ops.reshape(self, *shape)

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

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.chunk(self, chunks, dim)

    def tril(self, diagonal=0):
        return ops.tril(self, diagonal)

    def triu(self, diagonal=0):
        return ops.triu(self, diagonal)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)

    def maximum(self, other):
        return ops.maximum(self, other)

    def astype(self, dtype):
        return ops.astype(self, dtype)

    def float(self):
        return ops.astype(self, np.float32)

    def double(self):
        return ops.astype(self, np.float64)

    def long(self):
        return ops.astype(self, np.int64)

    def contiguous(self):
        return self


def zero_grads(tensors, set_to_none: bool = True) -> None:
    """Forget the gradients of `tensors`: drop them (None) or fill them with 0 in place.

    Shared by Module.zero_grad and Optimizer.zero_grad.
    """
    for t in tensors:
        if t.grad is None:
            continue
        if set_to_none:
            t.grad = None
        else:
            t.grad.data[...] = 0


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _topological_order(root: Tensor) -> list:
    """Tensors reachable from root, each after all of its inputs (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is not None:
            for x in ctx.inputs:
                if isinstance(x, Tensor) and x.requires_grad and id(x) not in visited:
                    stack.append((x, False))
    return order


from tinyllm import ops  # noqa: E402  (ops builds on Tensor; Tensor's operators call ops)
