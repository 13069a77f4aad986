"""The KL coefficient β: fixed, or adapted to hold the policy near a target KL (Ziegler et al. 2019 §2.2).

The reward PPO maximizes is r(x, y) − β·KL(π || π_ref). A fixed β fits one reward scale
and one stage of training; too small and the policy runs off to text the reward model
misjudges (reward hacking), too large and it never moves. Ziegler et al. steer β by a
proportional controller towards a target KL per sequence:

    e   = clip(KL / KL_target − 1, −0.2, 0.2)         the relative error, clipped
    β  <- β · (1 + e · n / horizon)                   n = sequences in this batch

so β grows while the policy drifts past the target and shrinks while it stays under it.
Example: β = 0.1, KL = 9, target 6, n = 32, horizon 10000: e = 0.2, β <- 0.1·(1 + 0.2·32/10000) = 0.10006.
(TRL's AdaptiveKLController is this rule; its defaults: target 6, horizon 10000.)
"""

from __future__ import annotations

import numpy as np


class FixedKLController:
    """β stays where it started (β = 0 turns the KL penalty off)."""

    def __init__(self, kl_coef: float):
        if not kl_coef >= 0:
            raise ValueError(f"the KL coefficient must be >= 0 (0 = no penalty), got {kl_coef!r}")
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController(FixedKLController):
    """β <- β · (1 + clip(KL / target − 1, −0.2, 0.2) · n / horizon); see the module docstring."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        super().__init__(init_kl_coef)
        if not (target > 0 and horizon > 0):
            raise ValueError(f"the adaptive KL controller needs target > 0 and horizon > 0, got {target}, {horizon}")
        self.target, self.horizon = float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1, -0.2, 0.2))
        self.value *= 1 + error * n_steps / self.horizon
