"""Gated linear units: swiglu and geglu, the gate of a gated MLP (Shazeer 2020, "GLU Variants Improve Transformer").

A gated MLP has two projections up instead of one; one of them, passed through
an activation, scales the other elementwise:

    swiglu(g, u) = silu(g) ⊙ u = g σ(g) ⊙ u           (PaLM, LLaMA, Mistral)
    geglu(g, u)  = gelu(g) ⊙ u = g Φ(g) ⊙ u           (Shazeer 2020; exact GELU, as torch's F.gelu)

    with g = x W_gate, u = x W_up:   FFN(x) = (act(x W_gate) ⊙ x W_up) W_down

The gradients, with a = act(g) and grad_out the gradient of the product:

    grad_u = grad_out ⊙ a
    grad_g = grad_out ⊙ u ⊙ act'(g)          act' as in activations.py (silu' = σ(1 + g(1 - σ)))

Composed from primitives this is two ops, ``act(g) * u``: two passes over
memory forward, three backward, and three (B, T, d_ff) arrays kept for the
backward (g, act(g), u). Fused it is one pass forward and two backward (one
per gradient), keeping only g and u: on the host in float32 they are Numba
ufuncs (act recomputed in the backward, cheaper than storing it).
benchmarks/bench_norms_activations.py times the two.

Example: swiglu([1, -1], [2, 3]) = [silu(1)·2, silu(-1)·3] = [1.4621, -0.8068].
"""

from __future__ import annotations

import numpy as np

from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor
from tinyllm.functional.activations import _REFERENCE
from tinyllm.functional.kernels import HALF, ONE, contiguous, erf32, exp32, f32, split, ufunc

__all__ = ["GATED", "geglu", "gated", "swiglu"]

GATED = {"swiglu": "silu", "geglu": "gelu"}  # gated MLP name -> the activation of its gate


# ----------------------------------------------------------------------------- reference (any array module)


def _gated_reference(name, g, u, grad_out=None):
    """act(g) ⊙ u, or with grad_out the pair (grad_g, grad_u); act is the definition in activations.py."""
    act = _REFERENCE[GATED[name]]
    if grad_out is None:
        return act(g) * u
    return act(g, grad_out * u), grad_out * act(g)


# ----------------------------------------------------------------------------- the host kernels (float32 ufuncs)
# subtle: elementwise Numba ufuncs, not an @kernel loop writing both gradients at once: the ufuncs
# vectorize (SIMD), the two-output loop did not, and ran ~8x slower than one pass of a ufunc.

_SQRT1_2_32, _INV_SQRT_2PI_32 = f32(0.7071067811865476), f32(0.3989422804014327)


@ufunc(["float32(float32, float32)"])
def swiglu32(g, u):
    """silu(g) u = g σ(g) u."""
    return g / (ONE + exp32(-g)) * u


@ufunc(["float32(float32, float32)"])
def swiglu32_grad_up(g, go):
    """grad_u = grad_out silu(g)."""
    return go * g / (ONE + exp32(-g))


@ufunc(["float32(float32, float32, float32)"])
def swiglu32_grad_gate(g, u, go):
    """grad_g = grad_out u σ(g)(1 + g(1 - σ(g)))."""
    s = ONE / (ONE + exp32(-g))
    return go * u * s * (ONE + g * (ONE - s))


@ufunc(["float32(float32, float32)"])
def geglu32(g, u):
    """gelu(g) u = g Φ(g) u."""
    return HALF * g * (ONE + erf32(g * _SQRT1_2_32)) * u


@ufunc(["float32(float32, float32)"])
def geglu32_grad_up(g, go):
    """grad_u = grad_out gelu(g)."""
    return go * HALF * g * (ONE + erf32(g * _SQRT1_2_32))


@ufunc(["float32(float32, float32, float32)"])
def geglu32_grad_gate(g, u, go):
    """grad_g = grad_out u (Φ(g) + g φ(g))."""
    cdf = HALF * (ONE + erf32(g * _SQRT1_2_32))
    return go * u * (cdf + g * exp32(-HALF * g * g) * _INV_SQRT_2PI_32)


_UFUNCS = {"swiglu": (swiglu32, swiglu32_grad_up, swiglu32_grad_gate),
           "geglu": (geglu32, geglu32_grad_up, geglu32_grad_gate)}


def gated_kernel(name, g, u, grad_out=None):
    """The float32 host version of _gated_reference: one vectorized pass forward, two backward (one per
    gradient), split over threads by ranges of elements."""
    forward, grad_up, grad_gate = _UFUNCS[name]
    shape = g.shape
    g, u = contiguous(g).reshape(-1), contiguous(u).reshape(-1)
    if grad_out is None:
        out = np.empty_like(g)
        split(lambda a, b: forward(g[a:b], u[a:b], out=out[a:b]), g.size, 2 * g.size)
        return out.reshape(shape)
    go = contiguous(grad_out).reshape(-1)
    grad_g, grad_u = np.empty_like(g), np.empty_like(u)

    def part(a, b):
        grad_up(g[a:b], go[a:b], out=grad_u[a:b])
        grad_gate(g[a:b], u[a:b], go[a:b], out=grad_g[a:b])
    split(part, g.size, 3 * g.size)
    return grad_g.reshape(shape), grad_u.reshape(shape)


def _apply(name, g, u, grad_out=None):
    if kernels.usable(g, u, grad_out):
        return gated_kernel(name, g, u, grad_out)
    return _gated_reference(name, g, u, grad_out)


# ----------------------------------------------------------------------------- the op


class GatedActivation(Function):
    """y = act(g) ⊙ u for act = silu (swiglu) or gelu (geglu); saves g and u only."""

    @staticmethod
    def forward(ctx, g, u, name):
        ctx.save_for_backward(g, u)
        ctx.name = name
        return _apply(name, g, u)

    @staticmethod
    def backward(ctx, grad_out):
        # grad_g = grad_out ⊙ u ⊙ act'(g),  grad_u = grad_out ⊙ act(g)
        g, u = ctx.saved
        return _apply(ctx.name, g, u, grad_out)


def gated(name: str, gate, up):
    """act(gate) ⊙ up for name "swiglu" (act = silu) or "geglu" (act = gelu); gate and up of one shape."""
    if name not in GATED:
        raise ValueError(f"gated: unknown gated activation {name!r}; expected one of {sorted(GATED)}")
    g, u = as_tensor(gate, f"{name}: gate"), as_tensor(up, f"{name}: up")
    if g.shape != u.shape:
        raise ValueError(f"{name}: gate and up must have the same shape (the two projections of one MLP), got "
                         f"{tuple(g.shape)} and {tuple(u.shape)}")
    if g.dtype != u.dtype or g.dtype.kind != "f":
        raise TypeError(f"{name}: gate and up must share one floating dtype, got {g.dtype} and {u.dtype}")
    return GatedActivation.apply(g, u, name=name)


def swiglu(gate, up):
    """silu(gate) ⊙ up (Shazeer 2020; LLaMA's MLP: down(swiglu(gate(x), up(x)))).

    >>> F.swiglu(tinyllm.tensor([1.0, -1.0]), tinyllm.tensor([2.0, 3.0]))
    tensor([ 1.4621172 , -0.80682427])
    """
    return gated("swiglu", gate, up)


def geglu(gate, up):
    """gelu(gate) ⊙ up, exact GELU (Shazeer 2020).

    >>> F.geglu(tinyllm.tensor([1.0, -1.0]), tinyllm.tensor([2.0, 3.0]))
    tensor([ 1.6826894 , -0.47596586])
    """
    return gated("geglu", gate, up)
