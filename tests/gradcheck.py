"""gradcheck: compare backward() with finite differences, in float64.

For a function y = f(x_1, ..., x_n) (Tensors in, a Tensor, or a tuple of
Tensors, out) pick a random weight array w of y's shape and look at the scalar

    L(x) = Σ_j w_j · y_j(x)

Its gradient dL/dx_i is exactly what ``y.backward(w)`` computes (the
vector-Jacobian product wᵀ·∂y/∂x_i), so checking L checks the whole Jacobian
in every direction that w can reach; a random w makes a wrong entry unlikely
to cancel.

The reference is the central difference, in float64:

    ∂L/∂x[k] ≈ (L(x + ε e_k) - L(x - ε e_k)) / 2ε        error O(ε²) + O(δ/ε)

(δ ≈ 1e-16·|L| is float64 round-off; ε = 1e-6 balances the two terms to
~1e-10.) That costs two evaluations of f per element, so for inputs with more
than ``max_elements`` (64) elements we check directional derivatives instead:
for random unit directions d,

    (L(x + ε d) - L(x - ε d)) / 2ε  ≈  <dL/dx, d>  =  Σ_k grad[k] · d[k]

A wrong gradient entry shows up in almost every random direction.

Checked inputs are replaced by fresh float64 leaves (the caller's tensors and
their .grad are left alone); a float64 input keeps its data array, so a
non-contiguous view stays non-contiguous for the analytic pass.
Non-float inputs (index tensors) and Python scalars are passed through.
Host math goes through ``tinyllm.to_numpy`` and perturbed inputs are put back
on the input's device with ``tinyllm.backend.asarray``, so the check runs on
the strict device too.

Example:
    >>> x = tinyllm.randn(3, 4, requires_grad=True)
    >>> gradcheck(lambda x: (x * x).sum(dim=1), [x])
    True
"""

from __future__ import annotations

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm.tensor import Tensor


def _outputs(y):
    """The float outputs of fn (integer ones, like argmax indices, carry no gradient)."""
    if isinstance(y, Tensor):
        y = [y]
    if isinstance(y, (tuple, list)) and all(isinstance(t, Tensor) for t in y):
        return [t for t in y if t.dtype.kind == "f"]
    raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {type(y).__name__}")


def _as_float64(x):
    """A fresh float64 leaf that requires grad; a float64 input keeps its data (and layout)."""
    data = x.data if x.dtype == np.float64 else x.data.astype(np.float64)
    return Tensor(data, requires_grad=True)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, n_directions=None, max_elements=64, seed=0):
    """Check fn's backward against float64 central differences; raise AssertionError if off.

    fn:            maps the inputs (Tensors) to a Tensor or a tuple of Tensors.
    inputs:        Tensors (those that require grad are checked) or other constants.
    n_directions:  None: every element of inputs up to `max_elements` elements, and
                   8 random directions for bigger ones; an int: that many random
                   directions for every checked input.
    A check passes when |numeric - analytic| <= atol + rtol * |analytic|.
    """
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, nothing to check")
    for i in checked:
        if inputs[i].dtype.kind != "f":
            raise TypeError(f"gradcheck: input {i} requires grad but has dtype {inputs[i].dtype}")
        inputs[i] = _as_float64(inputs[i])

    # analytic: backward of L = Σ w·y, i.e. y.backward(w) for each output
    outs = _outputs(fn(*inputs))
    weights = [rng.standard_normal(y.shape) for y in outs]
    for y, w in zip(outs, weights):
        if y.dtype != np.float64:
            raise AssertionError(f"gradcheck: output has dtype {y.dtype} for float64 inputs (a silent cast?)")
        if y.requires_grad:
            y.backward(backend.asarray(w, device=y.device), retain_graph=True)
    analytic = {}
    for i in checked:
        x = inputs[i]
        if x.grad is None:
            analytic[i] = np.zeros(x.shape)
            continue
        g = tinyllm.to_numpy(x.grad.data)
        if g.shape != x.shape:
            raise AssertionError(f"gradcheck: grad of input {i} has shape {g.shape}, expected {x.shape}")
        if g.dtype != x.dtype:
            raise AssertionError(f"gradcheck: grad of input {i} has dtype {g.dtype}, expected {x.dtype}")
        analytic[i] = np.array(g, dtype=np.float64)

    hosts = {i: np.array(tinyllm.to_numpy(inputs[i].data), dtype=np.float64) for i in checked}

    def loss(i, x_host):
        """L with input i replaced by x_host (float64 on the host), no graph."""
        args = list(inputs)
        args[i] = Tensor(backend.asarray(x_host, device=inputs[i].device))
        with tinyllm.no_grad():
            ys = _outputs(fn(*args))
        return float(sum(np.sum(np.asarray(tinyllm.to_numpy(y.data), dtype=np.float64) * w)
                         for y, w in zip(ys, weights)))

    def central(i, direction):
        x0 = hosts[i]
        return (loss(i, x0 + eps * direction) - loss(i, x0 - eps * direction)) / (2 * eps)

    for i in checked:
        x0, grad = hosts[i], analytic[i]
        if n_directions is None and x0.size <= max_elements:
            for k in range(x0.size):
                e = np.zeros(x0.size)
                e[k] = 1.0
                num, ana = central(i, e.reshape(x0.shape)), grad.reshape(-1)[k]
                if not abs(num - ana) <= atol + rtol * abs(ana):
                    raise AssertionError(
                        f"gradcheck: input {i} (shape {x0.shape}), element {np.unravel_index(k, x0.shape)}: "
                        f"backward gives {ana!r}, central difference gives {num!r}"
                    )
        else:
            for _ in range(8 if n_directions is None else n_directions):
                d = rng.standard_normal(x0.shape)
                d /= np.linalg.norm(d) or 1.0
                num, ana = central(i, d), float(np.sum(grad * d))
                if not abs(num - ana) <= atol + rtol * abs(ana):
                    raise AssertionError(
                        f"gradcheck: input {i} (shape {x0.shape}), random direction: "
                        f"<backward, d> = {ana!r}, central difference = {num!r}"
                    )
    return True
