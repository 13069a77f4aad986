"""ALiBi: attention with linear biases (Press, Smith & Lewis 2021, "Train Short, Test Long").

No position vectors at all: each head h subtracts from its attention scores a
penalty growing linearly with the distance between query i and key j:

    scores[h, i, j] = q_i·k_j / √hs  -  m_h · (i - j)          (j <= i; j > i is masked)

so every head has a built-in recency preference of its own strength m_h. The
slopes are a geometric sequence fixed before training (not learned). For n
heads, n a power of two:

    m_h = 2^(-8h/n),   h = 1 .. n          n = 8: 1/2, 1/4, ..., 1/256

For other n (the paper's code, `get_slopes`): take the 2^⌊log2 n⌋ slopes of the
largest power of two below n, then fill up with every other slope of the
next power of two (2·that), i.e. the ones that fall between them.
n = 6: [1/4, 1/16, 1/64, 1/256] + [1/2, 1/8] -> 2^-2, 2^-4, 2^-6, 2^-8, 2^-1, 2^-3.

Outside the causal mask (a bidirectional ablation), the bias here is
-m_h·|i - j|, which equals the paper's for every j <= i. (Hugging Face's BLOOM
adds m_h·j instead: it differs from -m_h·(i - j) by m_h·i, the same for a
whole row, which the softmax ignores.)

Example: n = 2 heads have slopes 2^-4, 2^-8; in the first head (h = 1, index 0),
query 2 over keys 0, 1, 2 gets the bias [-2/16, -1/16, 0].
"""

from __future__ import annotations

import math

import numpy as np


def alibi_slopes(n_head: int) -> np.ndarray:
    """m_h for h = 1..n_head, float64 (n_head,), as in the paper's code (any n_head >= 1)."""
    if isinstance(n_head, bool) or not isinstance(n_head, (int, np.integer)) or n_head < 1:
        raise ValueError(f"alibi_slopes: n_head must be a positive integer, got {n_head!r}")

    def power_of_two(n):  # n = 2^a: start = 2^(-8/n), ratio = start -> 2^(-8h/n)
        start = 2.0 ** (-8.0 / n)
        return [start ** h for h in range(1, n + 1)]

    if math.log2(n_head).is_integer():
        return np.array(power_of_two(n_head))
    closest = 2 ** math.floor(math.log2(n_head))
    extra = alibi_slopes(2 * closest)[0::2][: n_head - closest]
    return np.array(power_of_two(closest) + list(extra))


def alibi_bias(n_head: int, query_positions, key_positions) -> np.ndarray:
    """The additive bias (n_head, T_q, T_k) float64: -m_h · |i - j| for query positions i, key positions j."""
    qp = np.asarray(query_positions, dtype=np.float64)
    kp = np.asarray(key_positions, dtype=np.float64)
    dist = np.abs(qp[:, None] - kp[None, :])  # (T_q, T_k)
    return -alibi_slopes(n_head)[:, None, None] * dist[None]
