"""Generalized advantage estimation (Schulman et al. 2016) over the tokens of generated responses.

PPO needs, for every generated token t, how much better taking it was than the value
head expected. One step of lookahead (the TD residual) is noisy-free but biased by the
value head; the whole discounted return is unbiased but noisy. GAE mixes them:

    δ_t = r_t + γ·V_{t+1} − V_t                     the TD residual (V after the last token = 0)
    A_t = Σ_{l >= 0} (γλ)^l · δ_{t+l}                 over the real tokens of the response
        = δ_t + γλ·A_{t+1}                           the recursion, from the last token back
    R_t = A_t + V_t                                  the value head's regression target

λ = 0 is the one-step TD advantage, λ = 1 the Monte Carlo return minus V. Rewards,
values and mask are (B, T) arrays over the generated tokens: mask is 1 for real tokens
(a response stopped early has zeros after its end), and everything is 0 where it is 0.

Worked example (one response of 2 tokens, γ = λ = 1): r = [0, 1], V = [0.5, 0.2]
    δ = [0 + 0.2 − 0.5, 1 + 0 − 0.2] = [−0.3, 0.8];  A = [−0.3 + 0.8, 0.8] = [0.5, 0.8];  R = [1.0, 1.0]

Whitening: PPO normalizes the advantages of a batch to mean 0 and standard deviation 1
over its real tokens (masked_whiten), so the step size does not depend on the reward's scale.
"""

from __future__ import annotations

from tinyllm import backend


def _check(rewards, values, mask):
    shapes = {tuple(a.shape) for a in (rewards, values, mask)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"compute_gae: rewards, values and mask must be (B, T) arrays of one shape, got "
                         f"{[tuple(a.shape) for a in (rewards, values, mask)]}")


def compute_gae(rewards, values, mask, gamma: float = 1.0, lam: float = 0.95):
    """(advantages, returns), each (B, T): the recursion of the module docstring, 0 where mask is 0."""
    _check(rewards, values, mask)
    xp = backend.of(rewards, values, mask)
    m = mask.astype(rewards.dtype)
    B, T = rewards.shape
    adv = xp.zeros_like(rewards)
    next_value = xp.zeros(B, dtype=rewards.dtype)  # V after the last token
    next_adv = xp.zeros(B, dtype=rewards.dtype)
    for t in range(T - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]           # (B,)
        adv[:, t] = (delta + gamma * lam * next_adv) * m[:, t]
        # subtle: a padded position passes nothing back: the token before it was the last real one
        next_value, next_adv = values[:, t] * m[:, t], adv[:, t]
    returns = (adv + values) * m
    return adv, returns


def masked_mean(x, mask):
    """The mean of x over the positions where mask is 1 (arrays or Tensors)."""
    return (x * mask).sum() / mask.sum()


def masked_whiten(x, mask, shift_mean: bool = True, eps: float = 1e-8):
    """(x − mean) / std over the real positions (mean kept when shift_mean=False), 0 elsewhere; raw arrays."""
    xp = backend.of(x, mask)
    m = mask.astype(x.dtype)
    n = m.sum()
    mean = (x * m).sum() / n
    var = (((x - mean) ** 2) * m).sum() / xp.maximum(n - 1, 1)  # unbiased, as TRL's masked_var
    out = (x - mean) / xp.sqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * m
