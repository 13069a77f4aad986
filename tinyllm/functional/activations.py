"""Activations: the nonlinearities between the linear layers of an MLP.

    relu(x)        = max(x, 0)                                  (re-exported from tinyllm.ops)
    gelu(x)        = x Φ(x) = x · ½(1 + erf(x/√2))              Hendrycks & Gimpel 2016, GPT-2, BERT
    gelu(x, "tanh")= ½x(1 + tanh(√(2/π)(x + 0.044715 x³)))     the same paper's fast approximation
    silu(x)        = x σ(x) = x / (1 + e^{-x})                  Elfwing et al. 2017 ("swish"), LLaMA's SwiGLU

gelu and silu are fused ops: forward saves only x, and backward applies the
derivative in closed form (one pass, no graph of exp/mul/add nodes). On the
host in float32 both passes run as Numba kernels (tinyllm.functional.kernels);
the reference code below is the definition, used for float64, the strict device
and CuPy, and the tests check the two agree.

The rest are primitives already, or short compositions of them (each node
saves no more than a fused op would, and they are nowhere near a transformer's
hot path, so a kernel would buy nothing):

    sigmoid(x)     = σ(x) = 1/(1 + e^{-x})                      (tinyllm.ops)
    tanh(x)        = (e^x - e^{-x})/(e^x + e^{-x}) = 2σ(2x) - 1  (tinyllm.ops)
    softplus(x)    = (1/β) log(1 + e^{βx}), x where βx > threshold   (tinyllm.ops)
    logsigmoid(x)  = log σ(x) = -softplus(-x)                   stable: never log of a rounded-to-0 σ
    leaky_relu(x)  = x if x > 0 else a·x                        Maas et al. 2013
    glu(x)         = a ⊙ σ(b), (a, b) = x split in half along dim    Dauphin et al. 2017
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm import backend, ops
from tinyllm.function import Function
from tinyllm.functional import kernels
from tinyllm.functional._util import as_tensor
from tinyllm.functional.kernels import HALF, ONE, TWO, contiguous, erf32, exp32, f32, split, ufunc
from tinyllm.ops import relu, sigmoid, softplus, tanh
from tinyllm.ops.common import axis

__all__ = ["gelu", "glu", "leaky_relu", "logsigmoid", "relu", "sigmoid", "silu", "softplus", "tanh"]

_SQRT1_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_K0 = math.sqrt(2 / math.pi)
_K1 = 0.044715


# ----------------------------------------------------------------------------- reference (any array module)


def _gelu_reference(x, grad_out=None):
    """Φ(x) = ½(1 + erf(x/√2)); gelu = x Φ(x); gelu' = Φ(x) + x φ(x), φ(x) = e^{-x²/2}/√(2π)."""
    xp = backend.of(x)
    cdf = backend.erf(x * _SQRT1_2)
    cdf += 1
    cdf *= 0.5
    if grad_out is None:
        cdf *= x
        return cdf
    pdf = x * x
    pdf *= -0.5
    pdf = xp.exp(pdf)
    pdf *= _INV_SQRT_2PI
    pdf *= x
    pdf += cdf
    pdf *= grad_out
    return pdf


def _gelu_tanh_reference(x, grad_out=None):
    """u = k0 (x + k1 x³), σ = σ(2u): gelu = ½x(1 + tanh u) = x σ; gelu' = σ + 2x σ(1 - σ) k0 (1 + 3 k1 x²).

    # subtle: 1 + tanh(u) cancels to 0 in float32 for u < -9; 2σ(2u) is the same number, computed stably.
    """
    u2 = x * x
    u2 *= _K1
    u2 += 1
    u2 *= x
    u2 *= 2 * _K0  # 2u
    s = _sigmoid(u2)
    if grad_out is None:
        s *= x
        return s
    d = 1 - s  # 2x σ(1-σ) k0 (1 + 3 k1 x²) + σ
    d *= s
    d *= x
    inner = x * x
    inner *= 3 * _K1
    inner += 1
    inner *= 2 * _K0
    d *= inner
    d += s
    d *= grad_out
    return d


def _sigmoid(x):
    """σ(x) = 1/(1 + e^{-x}), written with e^{-|x|} <= 1 so it never overflows."""
    xp = backend.of(x)
    e = xp.abs(x)
    e *= -1
    e = xp.exp(e)  # e^{-|x|} <= 1
    num = xp.where(x >= 0, x.dtype.type(1), e)  # σ = 1/(1+e) for x >= 0, e/(1+e) below
    e += 1
    num /= e
    return num


def _silu_reference(x, grad_out=None):
    """silu = x σ(x); silu' = σ(x)(1 + x(1 - σ(x)))."""
    s = _sigmoid(x)
    if grad_out is None:
        s *= x
        return s
    d = 1 - s
    d *= x
    d += 1
    d *= s
    d *= grad_out
    return d


# ----------------------------------------------- the host kernels (float32 ufuncs; checked against the reference above)


_SQRT1_2_32, _INV_SQRT_2PI_32 = f32(0.7071067811865476), f32(0.3989422804014327)
_K0_32, _K1_32 = f32(0.7978845608028654), f32(0.044715)  # sqrt(2/pi), the tanh-GELU cubic
_3K1_32 = f32(3 * 0.044715)


@ufunc(["float32(float32)"])
def gelu32(v):
    """x Φ(x) = ½x(1 + erf(x/√2))."""
    return HALF * v * (ONE + erf32(v * _SQRT1_2_32))


@ufunc(["float32(float32, float32)"])
def gelu32_backward(v, g):
    """g · (Φ(x) + x φ(x))."""
    cdf = HALF * (ONE + erf32(v * _SQRT1_2_32))
    pdf = exp32(-HALF * v * v) * _INV_SQRT_2PI_32
    return g * (cdf + v * pdf)


@ufunc(["float32(float32)"])
def gelu_tanh32(v):
    """½x(1 + tanh u) = x σ(2u), u = √(2/π)(x + 0.044715x³): no 1 + tanh cancellation for x < 0."""
    return v / (ONE + exp32(-TWO * _K0_32 * (v + _K1_32 * v * v * v)))


@ufunc(["float32(float32, float32)"])
def gelu_tanh32_backward(v, g):
    """g · (σ + 2xσ(1 - σ)·√(2/π)(1 + 3·0.044715x²)), σ = σ(2u)."""
    s = ONE / (ONE + exp32(-TWO * _K0_32 * (v + _K1_32 * v * v * v)))
    return g * (s + TWO * v * s * (ONE - s) * _K0_32 * (ONE + _3K1_32 * v * v))


@ufunc(["float32(float32)"])
def silu32(v):
    """x σ(x)."""
    return v / (ONE + exp32(-v))


@ufunc(["float32(float32, float32)"])
def silu32_backward(v, g):
    """g · σ(x)(1 + x(1 - σ(x)))."""
    s = ONE / (ONE + exp32(-v))
    return g * s * (ONE + v * (ONE - s))


_ELEMENTWISE = {"gelu": (gelu32, gelu32_backward), "gelu_tanh": (gelu_tanh32, gelu_tanh32_backward),
                "silu": (silu32, silu32_backward)}


def activation_kernel(name, x, grad_out=None):
    """name(x), or with grad_out the input gradient grad_out * name'(x); name in gelu, gelu_tanh, silu."""
    forward, backward = _ELEMENTWISE[name]
    shape = x.shape
    x = contiguous(x).reshape(-1)
    out = np.empty_like(x)
    if grad_out is None:
        split(lambda a, b: forward(x[a:b], out=out[a:b]), x.size, x.size)
    else:
        g = contiguous(grad_out).reshape(-1)
        split(lambda a, b: backward(x[a:b], g[a:b], out=out[a:b]), x.size, x.size)
    return out.reshape(shape)


_REFERENCE = {"gelu": _gelu_reference, "gelu_tanh": _gelu_tanh_reference, "silu": _silu_reference}


def _apply(name, x, grad_out=None):
    if kernels.usable(x, grad_out):
        return activation_kernel(name, x, grad_out)
    return _REFERENCE[name](x, grad_out)


# ----------------------------------------------------------------------------- the ops


class Activation(Function):
    """y = f(x) elementwise for f in gelu, gelu_tanh, silu; saves x only.

    Example: gelu([-1, 0, 1]) = [-0.1587, 0, 0.8413] (= x Φ(x), Φ(1) = 0.8413);
    its gradient at those points is [-0.0833, 0.5, 1.0833].
    """

    @staticmethod
    def forward(ctx, x, name):
        ctx.save_for_backward(x)
        ctx.name = name
        return _apply(name, x)

    @staticmethod
    def backward(ctx, grad_out):
        # grad_x = grad_out · f'(x), f' in closed form:
        #   gelu:      Φ(x) + x φ(x)
        #   gelu_tanh: ½(1 + t) + ½x(1 - t²)·√(2/π)(1 + 3·0.044715 x²),  t = tanh(√(2/π)(x + 0.044715 x³))
        #              (computed as σ + 2xσ(1-σ)·√(2/π)(1 + 3·0.044715 x²) with σ = ½(1 + t))
        #   silu:      σ(x)(1 + x(1 - σ(x)))
        (x,) = ctx.saved
        return _apply(ctx.name, x, grad_out)


def _float_input(input, name):
    x = as_tensor(input, f"{name}: input")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: input must be floating-point, got dtype {x.dtype}")
    return x


def gelu(input, approximate="none"):
    """torch.nn.functional.gelu: x Φ(x) (approximate="none") or its tanh form (approximate="tanh").

    >>> F.gelu(tinyllm.tensor([-1.0, 0.0, 1.0]))
    tensor([-0.15865529,  0.        ,  0.8413447 ])
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = _float_input(input, "gelu")
    return Activation.apply(x, name="gelu" if approximate == "none" else "gelu_tanh")


def silu(input, inplace=False):
    """torch.nn.functional.silu: x σ(x) ("swish"). `inplace` is accepted for compatibility and ignored.

    >>> F.silu(tinyllm.tensor([-1.0, 0.0, 1.0]))
    tensor([-0.26894143,  0.        ,  0.7310586 ])
    """
    return Activation.apply(_float_input(input, "silu"), name="silu")


def logsigmoid(input):
    """torch.nn.functional.logsigmoid: log σ(x) = -log(1 + e^{-x}) = -softplus(-x).

    # subtle: log(sigmoid(x)) is -inf once σ(x) rounds to 0 (x < -104 in float32); -softplus(-x)
    # = min(x, 0) - log1p(e^{-|x|}) stays finite. threshold=inf keeps softplus exact everywhere
    # (its default switches to the identity above 20, off by e^{-20} ≈ 2e-9).

    >>> F.logsigmoid(tinyllm.tensor([-200.0, 0.0, 3.0]))
    tensor([-2.000000e+02, -6.931472e-01, -4.858735e-02])
    """
    x = _float_input(input, "logsigmoid")
    return ops.neg(softplus(ops.neg(x), beta=1.0, threshold=math.inf))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """torch.nn.functional.leaky_relu: x where x > 0, negative_slope·x elsewhere (gradient 1 or negative_slope;
    at 0 it is negative_slope, as torch). `inplace` is accepted for compatibility and ignored.

    >>> F.leaky_relu(tinyllm.tensor([-2.0, 0.0, 3.0]), 0.1)
    tensor([-0.2,  0. ,  3. ])
    """
    x = _float_input(input, "leaky_relu")
    return ops.where(x > 0, x, x * negative_slope)


def glu(input, dim=-1):
    """torch.nn.functional.glu, the gated linear unit: split x in halves a, b along `dim`; a ⊙ σ(b).

    >>> F.glu(tinyllm.tensor([1.0, 2.0, 0.0, 100.0]))   # a = [1, 2], b = [0, 100]
    tensor([0.5, 2. ])
    """
    x = _float_input(input, "glu")
    if x.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even; "
                           "give it a tensor of 1 or more dims")
    d = axis(dim, x.ndim)
    if x.shape[d] % 2:
        raise RuntimeError(f"glu: halving dimension must be even, but dimension {d} is size {x.shape[d]}; "
                           f"pad it or pick another dim")
    n = x.shape[d] // 2
    a, b = ops.narrow(x, d, 0, n), ops.narrow(x, d, n, n)  # (..., 2n, ...) -> two (..., n, ...)
    return a * sigmoid(b)
