"""Function: one differentiable operation, forward and backward on raw arrays.

Reverse-mode autodiff needs, for every operation y = f(x1, ..., xn), two things:

    forward:   the value y from the input values
    backward:  given dL/dy (``grad_out``), the vector-Jacobian products
               dL/dxi = grad_out · ∂y/∂xi, one per input

A subclass writes both as static methods on raw arrays of the active backend
(NumPy, CuPy or the strict test device), never on Tensors, so its backward
builds no graph. ``apply`` wraps the call: it unpacks Tensors, runs forward,
and, when a gradient is wanted, records the inputs on the context so that
``Tensor.backward`` can walk the graph later.

Example (the whole of multiplication):

    class Mul(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad_out):
            # d(a*b)/da = b, d(a*b)/db = a
            a, b = ctx.saved
            return grad_out * b, grad_out * a

Broadcasting is *not* undone here: a backward may return a gradient of the
broadcast shape, and the engine (``tinyllm.autograd``) sums it back to the
input's shape in one place (``unbroadcast``).

In-place updates are checked as PyTorch's version counter checks them: each
Tensor counts its in-place updates (``_version``); ``apply`` notes the count of
every tensor whose array the op saved, and backward refuses to run on an array
that changed since (it would silently compute a wrong gradient).

# subtle: unlike torch, a view does not share its base's counter. ``y[0].add_(1)``
# (under no_grad) changes y's array but bumps only the view's count, so a backward
# that saved y's array is not stopped. Update the tensor itself, not a view of it.
"""

from __future__ import annotations

from tinyllm.autograd import is_grad_enabled
from tinyllm.tensor import Tensor


class Function:
    """Base class of every differentiable op. An instance is the op's context (ctx)."""

    __slots__ = ("inputs", "saved", "needs_input_grad", "freed", "versions", "__dict__")

    def __init__(self):
        self.inputs = ()
        self.saved = ()
        self.needs_input_grad = ()
        self.freed = False
        self.versions = ()  # (tensor, its _version when saved) for every saved input; (None, v) for the output

    def save_for_backward(self, *arrays) -> None:
        """Keep what backward needs (raw arrays). Freed after backward."""
        self.saved = arrays

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_out):  # pragma: no cover - abstract
        """Return one gradient per positional input of forward (None where there is none)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs) -> Tensor:
        """Run the op on Tensors (or constants) and, if needed, record it in the graph."""
        ctx = cls()
        raw = [x.data if isinstance(x, Tensor) else x for x in inputs]
        out = cls.forward(ctx, *raw, **kwargs)
        result = Tensor(out)
        if is_grad_enabled() and result.dtype.kind == "f":  # integer/bool results carry no gradient
            needs = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
            if any(needs):
                ctx.inputs = inputs
                ctx.needs_input_grad = needs
                if ctx.saved:
                    ctx.versions = _saved_versions(ctx.saved, inputs, out)
                result.requires_grad = True
                result._ctx = ctx
                return result
        ctx.saved = ()  # no graph: drop what forward saved right away
        return result

    def check_versions(self, out) -> None:
        """Raise if a tensor whose array this op saved was changed in place since (torch's check)."""
        for x, version in self.versions:
            t = out if x is None else x
            if t._version != version:
                raise RuntimeError(
                    f"one of the tensors needed to compute the gradient of {type(self).__name__} was "
                    f"modified by an in-place operation (version {version} -> {t._version}); "
                    "make the in-place update after backward, or use the out-of-place op (x = x + y)"
                )


def _saved_versions(saved, inputs, out) -> tuple:
    """(tensor, version) for each input whose array is among `saved`; (None, 0) if the output is."""
    versions = []
    for x in inputs:
        if isinstance(x, Tensor):
            for a in saved:
                if a is x.data:
                    versions.append((x, x._version))
                    break
    for a in saved:
        if a is out:
            versions.append((None, 0))
            break
    return tuple(versions)
