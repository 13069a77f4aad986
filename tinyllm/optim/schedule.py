"""Learning-rate schedules: linear warmup, then cosine decay.

Early in training Adam's second-moment estimate is poor and the weights are
random, so large steps can blow the model up; a warmup ramps the learning rate
from 0. Later, smaller steps settle into a minimum; a cosine curve lowers the
rate smoothly (Loshchilov & Hutter 2017, "SGDR"; warmup as in Goyal et al. 2017
and GPT-2/3 training). The formula, for step s = 0, 1, 2, ... (the same as
Hugging Face's ``get_cosine_schedule_with_warmup``, plus a floor ``min_lr``):

    lr(s) = max_lr · s / W                                   s < W    (warmup from 0)
    lr(s) = min_lr + (max_lr - min_lr) · ½ (1 + cos(π q))    W <= s < S,  q = (s - W) / (S - W)
    lr(s) = min_lr                                           s >= S

with W = warmup_steps and S = max_steps. So lr(0) = 0, lr(W) = max_lr and the
curve reaches min_lr at s = S.

Example (max_lr=1, W=2, S=6, min_lr=0):
    [cosine_with_warmup(s, 1.0, 2, 6) for s in range(7)]
    -> [0.0, 0.5, 1.0, 0.854, 0.5, 0.146, 0.0]
"""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, max_lr: float, warmup_steps: int, max_steps: int,
                       min_lr: float = 0.0) -> float:
    """The learning rate at `step`: linear warmup 0 -> max_lr, cosine max_lr -> min_lr, then min_lr."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0 or max_steps < warmup_steps:
        raise ValueError(
            f"expected 0 <= warmup_steps <= max_steps, got warmup_steps={warmup_steps}, max_steps={max_steps}"
        )
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= max_steps:
        return min_lr
    q = (step - warmup_steps) / (max_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * q))


class WarmupCosine:
    """Set each group's lr to ``base_lr * factor(step)``, like ``torch.optim.lr_scheduler.LambdaLR``.

    factor(s) = cosine_with_warmup(s, 1.0, warmup_steps, max_steps, min_lr_ratio): the
    groups warm up from 0 to their own base lr (their ``lr`` when the scheduler is made,
    remembered in ``group["initial_lr"]``), then decay to ``min_lr_ratio`` times it.

    As in PyTorch, making the scheduler applies step 0, and ``step()`` goes after
    ``optimizer.step()``:

        sched = WarmupCosine(opt, warmup_steps=100, max_steps=5000)
        for batch in data:
            loss.backward(); opt.step(); opt.zero_grad(); sched.step()
    """

    def __init__(self, optimizer, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.1):
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        cosine_with_warmup(0, 1.0, warmup_steps, max_steps)  # validates the step counts
        self.optimizer = optimizer
        self.warmup_steps = warmup_steps
        self.max_steps = max_steps
        self.min_lr_ratio = min_lr_ratio
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        return cosine_with_warmup(step, 1.0, self.warmup_steps, self.max_steps, self.min_lr_ratio)

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        self._last_lr = [base * f for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def step(self) -> None:
        """Advance one step and set the groups' learning rates."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list:
        """The learning rate of each group, as last set."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """JSON-able: the step counter, base rates and settings."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs),
                "warmup_steps": self.warmup_steps, "max_steps": self.max_steps,
                "min_lr_ratio": self.min_lr_ratio}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the counter and settings, and set the groups' rates for that step.

        A state that could not have been saved (a negative step, a rate that is not a finite number,
        one rate too few for the groups) is a ValueError, and nothing changes.
        """
        d = state_dict
        last_step, base_lrs = d["last_step"], d["base_lrs"]
        warmup_steps, max_steps, min_lr_ratio = d["warmup_steps"], d["max_steps"], d["min_lr_ratio"]

        def count(x):
            return isinstance(x, int) and not isinstance(x, bool) and x >= 0

        def rate(x):
            return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0

        n = len(self.optimizer.param_groups)
        if not (count(last_step) and count(warmup_steps) and count(max_steps) and warmup_steps <= max_steps
                and isinstance(base_lrs, list) and len(base_lrs) == n and all(map(rate, base_lrs))
                and rate(min_lr_ratio) and min_lr_ratio <= 1):
            shown = {k: d[k] for k in ("last_step", "base_lrs", "warmup_steps", "max_steps", "min_lr_ratio")}
            raise ValueError(f"WarmupCosine.load_state_dict: expected integer steps >= 0 with warmup_steps <= "
                             f"max_steps, one finite learning rate >= 0 per group ({n}) and min_lr_ratio in [0, 1]; "
                             f"got {str(shown)[:300]}")
        self.last_step, self.base_lrs = last_step, list(base_lrs)
        self.warmup_steps, self.max_steps, self.min_lr_ratio = warmup_steps, max_steps, min_lr_ratio
        self._apply()
