"""Linear: y = x Wᵀ + b, the layer that holds most of a transformer's parameters.

W has shape (out_features, in_features), as in PyTorch, so a row of W is one
output unit. All leading dims of x are flattened into one batch of rows first,
so forward and both weight products of the backward are single 2-D matrix
products (one BLAS call each):

    x (..., in) -> x2 (M, in);   y2 = x2 Wᵀ + b  (M, out)
    grad_x2 = grad_y2 W,   grad_W = grad_y2ᵀ x2,   grad_b = Σ_rows grad_y2

Fusing the bias add saves a broadcast node and a pass over y (it is added in
place into the fresh product).
"""

from __future__ import annotations

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor


def _add_rows_(y, bias) -> None:
    """y += bias for every row of y (M, out), in place; on the host the rows are split across cores."""
    if kernels.usable(y, bias):
        kernels.split(lambda a, b: y[a:b].__iadd__(bias), y.shape[0], y.size)
    else:
        y += bias


class Linear(Function):
    """y = x Wᵀ + b over the last dim of x.

    Example: x = [[1, 2]], W = [[1, 0], [1, 1], [0, 2]], b = [0, 0, 1] -> y = [[1, 3, 5]];
    grad_out = [[1, 1, 1]] -> grad_x = [[2, 3]], grad_W = [[1, 2], [1, 2], [1, 2]], grad_b = [1, 1, 1].
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        out_features, in_features = weight.shape
        x2 = x.reshape(-1, in_features)  # (..., in) -> (M, in)
        y = x2 @ weight.T  # (M, out)
        if bias is not None:
            _add_rows_(y, bias)
        ctx.save_for_backward(x2, weight)
        ctx.x_shape = x.shape
        return y.reshape(*x.shape[:-1], out_features)  # (M, out) -> (..., out)

    @staticmethod
    def backward(ctx, grad_out):
        # y = x Wᵀ + b:  grad_x = grad_out W,  grad_W = grad_outᵀ x,  grad_b = Σ_rows grad_out
        x2, weight = ctx.saved
        g2 = grad_out.reshape(-1, weight.shape[0])  # (..., out) -> (M, out)
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = (g2 @ weight).reshape(ctx.x_shape) if need_x else None
        grad_w = g2.T @ x2 if need_w else None
        # Σ_rows as a product with a ones vector: BLAS runs it on every core, g2.sum(axis=0) on one
        grad_b = backend.of(g2).ones(g2.shape[0], dtype=g2.dtype) @ g2 if need_b else None
        return grad_x, grad_w, grad_b


def linear(input, weight, bias=None):
    """torch.nn.functional.linear: input @ weight.T + bias, weight (out_features, in_features).

    >>> F.linear(tinyllm.tensor([[1.0, 2.0]]), tinyllm.tensor([[1.0, 0.0], [1.0, 1.0]]), tinyllm.tensor([0.0, 1.0]))
    tensor([[1., 4.]])
    """
    x = as_tensor(input, "linear: input")
    weight = as_tensor(weight, "linear: weight")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features in its last dim "
                         f"(shape {tuple(x.shape)}), but weight of shape {tuple(weight.shape)} expects "
                         f"in_features={weight.shape[1]}")
    if bias is not None:
        bias = as_tensor(bias, "linear: bias")
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) = (out_features,), "
                             f"got {tuple(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"linear: input has dtype {x.dtype} but {name} has {t.dtype}; cast one to match")
    return Linear.apply(x, weight, bias)
