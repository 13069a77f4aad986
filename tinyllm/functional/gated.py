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
backward (g, act(g), u). Fused it is one pass each way, keeping only g and u:
on the host in float32 both passes run as one Numba loop (act recomputed in
the backward, cheaper than storing it). benchmarks/bench_norms_activations.py
times the two.

Example: swiglu([1, -1], [2, 3]) = [silu(1)·2, silu(-1)·3] = [1.4621, -0.8068].
"""

from __future__ import annotations

import numpy as np

from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor
from tinyllm.functional.activations import _REFERENCE
from tinyllm.functional.kernels import HALF, ONE, contiguous, erf32, exp32, f32, inline, kernel, split

__all__ = ["GATED", "geglu", "gated", "swiglu"]

GATED = {"swiglu": "silu", "geglu": "gelu"}  # gated MLP name -> the activation of its gate


# ----------------------------------------------------------------------------- reference (any array module)


def _gated_reference(name, g, u, grad_out=None):
    """act(g) ⊙ u, or with grad_out the pair (grad_g, grad_u); act is the definition in activations.py."""
    act = _REFERENCE[GATED[name]]
    if grad_out is None:
        return act(g) * u
    return act(g, grad_out * u), grad_out * act(g)


# ----------------------------------------------------------------------------- the host kernels (float32)

_SQRT1_2_32, _INV_SQRT_2PI_32 = f32(0.7071067811865476), f32(0.3989422804014327)


@inline
def _act_and_slope(v, gelu):
    """(act(v), act'(v)): silu -> (v σ, σ(1 + v(1 - σ))); gelu -> (v Φ, Φ + v φ)."""
    if gelu:
        cdf = HALF * (ONE + erf32(v * _SQRT1_2_32))
        return v * cdf, cdf + v * exp32(-HALF * v * v) * _INV_SQRT_2PI_32
    s = ONE / (ONE + exp32(-v))
    return v * s, s * (ONE + v * (ONE - s))


@kernel
def _gated_fwd(g, u, out, gelu):
    for i in range(g.size):
        a, _ = _act_and_slope(g[i], gelu)
        out[i] = a * u[i]


@kernel
def _gated_bwd(g, u, grad_out, grad_g, grad_u, gelu):
    for i in range(g.size):
        a, d = _act_and_slope(g[i], gelu)
        grad_u[i] = grad_out[i] * a
        grad_g[i] = grad_out[i] * u[i] * d


def gated_kernel(name, g, u, grad_out=None):
    """The float32 host version of _gated_reference: one pass, split over threads by ranges of elements."""
    shape = g.shape
    g, u = contiguous(g).reshape(-1), contiguous(u).reshape(-1)
    gelu = GATED[name] == "gelu"
    if grad_out is None:
        out = np.empty_like(g)
        split(lambda a, b: _gated_fwd(g[a:b], u[a:b], out[a:b], gelu), g.size, 2 * g.size)
        return out.reshape(shape)
    go = contiguous(grad_out).reshape(-1)
    grad_g, grad_u = np.empty_like(g), np.empty_like(u)
    split(lambda a, b: _gated_bwd(g[a:b], u[a:b], go[a:b], grad_g[a:b], grad_u[a:b], gelu), g.size, 3 * g.size)
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
