"""Sinusoidal positions (Vaswani et al. 2017, "Attention Is All You Need", §3.5).

Position p gets a fixed vector PE[p] of d_model numbers, added to the token embedding:

    PE[p, 2i]   = sin(p / 10000^(2i/d))        i = 0 .. d/2 - 1
    PE[p, 2i+1] = cos(p / 10000^(2i/d))

Each pair (2i, 2i+1) is a point on a circle turning with angular speed
ω_i = 10000^(-2i/d) per position: pair 0 turns once every 2π ≈ 6.3 positions,
the last pair once every ~2π·10000. Because the pair for p + k is the pair for
p rotated by k·ω_i, PE[p + k] is a linear function of PE[p] (the same for all
p), which the paper hoped would let attention pick out relative offsets. No
parameters, and any position has a vector, so a model can at least *run* past
the length it was trained on (whether it works there is measured in lab 2).

Example (d = 4): PE[0] = [0, 1, 0, 1]; PE[1] = [sin 1, cos 1, sin 0.01, cos 0.01]
= [0.841, 0.540, 0.010, 1.000].
"""

from __future__ import annotations

import numpy as np


def sinusoidal_table(positions, d_model: int, base: float = 10000.0, dtype=np.float32) -> np.ndarray:
    """PE (T, d_model) for positions (T,) (or an int T: positions 0..T-1); computed in float64, returned as dtype."""
    if d_model % 2:
        raise ValueError(f"sinusoidal_table: d_model must be even (sin and cos pairs), got {d_model}")
    pos = np.arange(positions) if np.isscalar(positions) else np.asarray(positions)
    omega = base ** (-np.arange(0, d_model, 2, dtype=np.float64) / d_model)  # (d/2,) ω_i = base^(-2i/d)
    angle = pos.astype(np.float64)[:, None] * omega[None, :]  # (T, d/2)
    pe = np.empty((len(pos), d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angle)  # even dims: sin
    pe[:, 1::2] = np.cos(angle)  # odd dims: cos
    return pe.astype(dtype)
