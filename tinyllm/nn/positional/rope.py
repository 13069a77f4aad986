"""RoPE: rotary position embedding (Su et al. 2021, "RoFormer", §3.4).

Instead of adding a position vector, rotate each query and key by an angle
proportional to its position. Split a head's hs dims into hs/2 planes; plane i
turns by m·θ_i at position m, with θ_i = base^(-2i/hs) (base = rope_theta,
10000 in the paper):

    [x'_a]   [cos mθ_i  -sin mθ_i] [x_a]
    [x'_b] = [sin mθ_i   cos mθ_i] [x_b]          for each plane (a, b)

Rotations preserve dot products up to their difference, so the score of
query m with key n only depends on m - n:

    <R(mθ) q, R(nθ) k> = <q, R((n - m)θ) k>

In complex numbers (plane i as z = x_a + i·x_b): z' = z · e^(i·m·θ_i), and
Re(q'·conj(k')) = Re(q·conj(k)·e^(i(m-n)θ)). The tests check the rotation
against exactly that complex product.

Which dims form a plane is a layout choice, and checkpoints differ:

    "interleaved"  (a, b) = (2i, 2i+1)      the paper, Meta's Llama code, GGUF / llama.cpp
    "half"         (a, b) = (i, i + hs/2)   Hugging Face Llama ("rotate_half"), GPT-NeoX

tinyllm uses **"half"**, so its q/k projections are laid out as Hugging Face's
and export there without reordering. Rotating x in one layout equals
rotating P·x in the other, where P reorders a head's dims: half_to_interleaved
applies P to the rows of W_q and W_k (this is the permutation llama.cpp's
convert_hf_to_gguf.py applies), interleaved_to_half undoes it. Scores do not
change, since P is applied to both q and k.

Example (hs = 2, one plane, θ_0 = 1): q = [1, 0] at m = 1 -> [cos 1, sin 1] = [0.540, 0.841].

Backward: y = x ⊙ cos + rot(x) ⊙ sin with rot(x) = [-x_b, x_a] a fixed linear map;
rotᵀ = -rot, so dx = g ⊙ cos - rot(g ⊙ sin).
"""

from __future__ import annotations

import numpy as np

from tinyllm import backend
from tinyllm.function import Function
from tinyllm.tensor import Tensor


def rope_cos_sin(positions, head_dim: int, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin (T, head_dim) float32 for the "half" layout: column c has angle pos · θ_(c mod hs/2).

    positions: ints (T,) or an int T (0..T-1).
    """
    if head_dim % 2:
        raise ValueError(f"rope_cos_sin: head_dim must be even (RoPE turns pairs of dims), got {head_dim}")
    pos = np.arange(positions) if np.isscalar(positions) else np.asarray(positions)
    inv_freq = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (hs/2,) θ_i
    angle = pos.astype(np.float64)[:, None] * inv_freq[None, :]  # (T, hs/2)
    angle = np.concatenate([angle, angle], axis=1)  # (T, hs): dims i and i + hs/2 share plane i
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def rotate_half(x):
    """rot(x) = [-x_b, x_a] with x_a = x[..., :hs/2], x_b = x[..., hs/2:]."""
    h = x.shape[-1] // 2
    xp = backend.of(x)
    return xp.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rotate(x, cos, sin):
    """x ⊙ cos + rot(x) ⊙ sin on raw arrays: x (..., T, hs), cos and sin broadcasting to it (e.g. (T, hs))."""
    return x * cos + rotate_half(x) * sin


class _Rope(Function):
    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.cos, ctx.sin = cos, sin
        return rotate(x, cos, sin)  # (..., T, hs) ⊙ (T, hs)

    @staticmethod
    def backward(ctx, grad_out):
        # y = x ⊙ cos + rot(x) ⊙ sin, rot linear with rotᵀ = -rot:  dx = g ⊙ cos - rot(g ⊙ sin)
        return grad_out * ctx.cos - rotate_half(grad_out * ctx.sin)


def apply_rope(x, cos, sin):
    """Rotate x (..., T, hs) — a Tensor — by the angles of cos, sin (T, hs) ("half" layout); differentiable."""
    if not isinstance(x, Tensor):
        raise TypeError(f"apply_rope: x must be a tinyllm Tensor, got {type(x).__name__}; "
                        "wrap data with tinyllm.tensor(...)")
    if x.shape[-2:] != tuple(cos.shape) or cos.shape != sin.shape:
        raise ValueError(f"apply_rope: x (..., T, hs) = {tuple(x.shape)} needs cos and sin of shape (T, hs), "
                         f"got {tuple(cos.shape)} and {tuple(sin.shape)}")
    return _Rope.apply(x, cos=backend.asarray(cos, dtype=x.dtype, device=x.device),
                       sin=backend.asarray(sin, dtype=x.dtype, device=x.device))


# ---------------------------------------------------------------------- the other layout, for conversion


def apply_rope_interleaved(x: np.ndarray, positions, theta: float = 10000.0) -> np.ndarray:
    """The paper's layout on a NumPy array x (..., T, hs): planes are dims (2i, 2i+1). A reference for tests."""
    T, hs = x.shape[-2:]
    pos = np.arange(positions) if np.isscalar(positions) else np.asarray(positions)
    inv_freq = theta ** (-np.arange(0, hs, 2, dtype=np.float64) / hs)
    angle = pos.astype(np.float64)[:, None] * inv_freq[None, :]  # (T, hs/2)
    c, s = np.cos(angle), np.sin(angle)
    a, b = x[..., 0::2].astype(np.float64), x[..., 1::2].astype(np.float64)
    out = np.empty(x.shape, dtype=np.float64)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out.astype(x.dtype)


def _half_to_interleaved_index(hs: int) -> np.ndarray:
    """perm with x_interleaved = x_half[perm]: [0, h, 1, h+1, ...] (h = hs/2)."""
    h = hs // 2
    return np.stack([np.arange(h), np.arange(h) + h], axis=1).reshape(-1)


def half_to_interleaved(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder the rows of a q or k projection weight (n_heads·hs, C) from the "half" to the "interleaved" layout.

    Also works for a bias (n_heads·hs,). After it, rotating with apply_rope_interleaved gives the
    same dims, reordered, as apply_rope did before, and the same attention scores.
    """
    w = np.asarray(weight)
    hs = w.shape[0] // n_heads
    if w.shape[0] != n_heads * hs or hs % 2:
        raise ValueError(f"half_to_interleaved: {w.shape[0]} rows are not n_heads={n_heads} heads of an even size")
    perm = _half_to_interleaved_index(hs)
    return w.reshape(n_heads, hs, *w.shape[1:])[:, perm].reshape(w.shape)  # (nh·hs, ·) -> (nh, hs, ·), reorder


def interleaved_to_half(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """The inverse of half_to_interleaved (Hugging Face's convert_llama_weights_to_hf permute)."""
    w = np.asarray(weight)
    hs = w.shape[0] // n_heads
    if w.shape[0] != n_heads * hs or hs % 2:
        raise ValueError(f"interleaved_to_half: {w.shape[0]} rows are not n_heads={n_heads} heads of an even size")
    inv = np.argsort(_half_to_interleaved_index(hs))
    return w.reshape(n_heads, hs, *w.shape[1:])[:, inv].reshape(w.shape)
