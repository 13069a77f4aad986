"""The backward engine: the chain rule, applied to a graph of Functions in reverse order.

Every Tensor made by an op remembers the op (``t.grad_fn``, a Function instance
whose ``inputs`` are the op's operands). ``loss.backward()`` calls
``backward(loss)`` here, which computes, for every tensor x in the graph,

    dL/dx = Σ over every use y = f(..., x, ...) of  f.backward(dL/dy)[x's slot]

in three steps:

1. **Order.** ``topological_order`` lists the tensors reachable from the root,
   each after all of its inputs (an iterative depth-first search: a 10,000-op
   chain must not hit Python's recursion limit). Walking that list backwards
   visits a tensor only once every use of it has contributed: its gradient is
   complete before it is passed on.
2. **Accumulate.** Gradients wait in a dict keyed by tensor id. A tensor used
   twice (``x * x``) receives two contributions, added together. Broadcasting is
   undone here, in one place (``unbroadcast``), so no op's backward has to.
3. **Free.** Unless ``retain_graph=True``, each Function drops its saved arrays
   once its backward has run, as PyTorch does.

Leaves (tensors no op made, e.g. parameters) keep their gradient in ``.grad``,
and *accumulate* across calls until someone zeroes them.

# subtle: buffer ownership. A gradient array handed to us by a backward may be
# shared (``Add.backward`` returns ``grad_out`` itself to both inputs), so adding
# into it in place would corrupt the other. Each entry remembers whether this
# engine allocated the array ("owned"); only owned arrays are updated in place.

Example:
    >>> a = tinyllm.tensor([2.0, 3.0], requires_grad=True)
    >>> y = (a * a).sum()          # y = a0² + a1²
    >>> y.backward()               # -> backward(y): Sum, then Mul (both uses of a)
    >>> a.grad                     # dy/da = 2a
    tensor([4., 6.])
"""

from __future__ import annotations

import contextlib
import contextvars

from tinyllm import backend

# ----------------------------------------------------------------------------- grad mode

_grad_enabled = contextvars.ContextVar("tinyllm_grad_enabled", default=True)


def is_grad_enabled() -> bool:
    """Whether ops record the graph now (False inside ``no_grad()``)."""
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
    """Context manager / decorator: record the graph again (e.g. inside a ``no_grad`` block)."""
    return _GradMode(True)


# ----------------------------------------------------------------------------- gradient shapes


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
    the engine adds it into a single buffer per input. Splitting qkv into q, k, v
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


# ----------------------------------------------------------------------------- the engine


def _graph_inputs(t):
    """The inputs of t's Function that gradients flow to (tensors that require grad)."""
    fn = t._ctx
    if fn is None:
        return ()
    return [x for x, needed in zip(fn.inputs, fn.needs_input_grad) if needed]


def topological_order(root) -> list:
    """Tensors reachable from root, each after all of its inputs (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)  # all of t's inputs are already in `order`
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        stack.extend((x, False) for x in _graph_inputs(t) if id(x) not in visited)
    return order


def _accumulate(grads: dict, x, gx) -> None:
    """grads[id(x)] += gx, allocating (and owning) a buffer only when a second contribution arrives."""
    entry = grads.get(id(x))
    if isinstance(gx, IndexGrad):  # zero except at x[key]: write into one owned buffer
        if entry is None or not entry[1]:
            buf = backend.of(gx.values).zeros(x.shape, x.dtype) if entry is None \
                else entry[0].astype(x.dtype, copy=True)
            entry = grads[id(x)] = [buf, True]
        gx.add_to(entry[0])
        return
    if gx.shape != x.shape:
        gx = unbroadcast(gx, x.shape)
    if gx.dtype != x.dtype:  # subtle: float32 * float64 -> the gradient keeps its input's dtype, as torch
        gx = gx.astype(x.dtype)
    if entry is None:
        grads[id(x)] = [gx, False]  # borrowed: may be shared with another input
    elif entry[1]:
        entry[0] += gx
    else:
        grads[id(x)] = [entry[0] + gx, True]


def backward(root, grad, retain_graph: bool = False) -> None:
    """Fill .grad of every leaf under `root` with d(root)/d(leaf)·grad, accumulating.

    `grad` is dL/d(root), a raw array of root's shape.
    """
    # grads[id(t)] = [array, owned]: see "buffer ownership" in the module docstring
    grads = {id(root): [grad, False]}
    for t in reversed(topological_order(root)):  # outputs before inputs
        entry = grads.pop(id(t), None)
        if entry is None:
            continue
        g, owned = entry
        fn = t._ctx
        if fn is None or t._retain_grad:  # a leaf (or asked to keep it): accumulate into .grad
            if t.grad is None:  # subtle: copy a borrowed array, it may be another tensor's gradient too
                t.grad = type(t)(g if owned and fn is None else g.copy())
            else:
                t.grad = type(t)(t.grad.data + g)
            if fn is None:
                continue
        if fn.freed:
            raise RuntimeError(
                "trying to backward through the graph a second time; the saved arrays were "
                "freed after the first backward. Pass retain_graph=True the first time."
            )
        if fn.versions:
            fn.check_versions(t)
        in_grads = type(fn).backward(fn, g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for x, gx, needed in zip(fn.inputs, in_grads, fn.needs_input_grad):
            if needed and gx is not None:
                _accumulate(grads, x, gx)
        if not retain_graph:
            fn.inputs, fn.saved, fn.freed = (), (), True


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
