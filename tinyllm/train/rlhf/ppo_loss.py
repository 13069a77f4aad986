"""PPO's loss on one minibatch of generated tokens (Schulman et al. 2017; as TRL's PPOTrainer.loss).

With the rollout's log-probabilities log π_old, values V_old, whitened advantages A and
returns R, and the current policy's log π and values V, per real token (mask 1):

    ρ        = exp(log π − log π_old)                            the probability ratio
    L_pg     = max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε))                the clipped surrogate (to minimize)
    V_clip   = V_old + clip(V − V_old, −ε_v, ε_v)
    L_v      = ½ · max((V − R)², (V_clip − R)²)                  value clipping
    loss     = mean(L_pg) + c_v · mean(L_v) − c_H · mean(H)      means over the real tokens

The clip removes the incentive to move ρ past 1 ± ε in the direction A favors: the
gradient of a clipped token is 0, so several epochs over one rollout cannot run far from
the policy that produced it. ``clipfrac`` counts those tokens.

Worked example (one token, ε = 0.2): A = 1, log π − log π_old = log 1.5 -> ρ = 1.5:
    −A·ρ = −1.5, −A·clip(ρ) = −1.2 -> L_pg = −1.2, clipped (its gradient is 0).
    A = −1, ρ = 1.5: −A·ρ = 1.5, −A·clip(ρ) = 1.2 -> L_pg = 1.5: a harmful step is never clipped away.
"""

from __future__ import annotations

import tinyllm
from tinyllm.train.rlhf.gae import masked_mean


def ppo_loss(logprobs, values, old_logprobs, old_values, advantages, returns, mask, *, cliprange: float = 0.2,
             cliprange_value: float = 0.2, vf_coef: float = 0.1, entropy=None, ent_coef: float = 0.0):
    """(loss, stats): loss a 0-d Tensor; stats floats (pg_loss, vf_loss, clipfrac, vf_clipfrac, approx_kl, entropy).

    logprobs, values: Tensors (B, T) of the current policy; the rest (B, T) Tensors without a graph,
    on the same device; entropy: the policy's per-token entropy (B, T), or None.
    """
    vclipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    vf1, vf2 = (values - returns) ** 2, (vclipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(tinyllm.maximum(vf1, vf2), mask)
    ratio = (logprobs - old_logprobs).exp()
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(tinyllm.maximum(pg1, pg2), mask)
    loss = pg_loss + vf_coef * vf_loss
    ent = None if entropy is None else masked_mean(entropy, mask)
    if ent is not None and ent_coef:
        loss = loss - ent_coef * ent
    with tinyllm.no_grad():
        stats = {
            "pg_loss": pg_loss.item(), "vf_loss": vf_loss.item(),
            "clipfrac": masked_mean((pg2 > pg1).float(), mask).item(),
            "vf_clipfrac": masked_mean((vf2 > vf1).float(), mask).item(),
            "approx_kl": 0.5 * masked_mean((logprobs - old_logprobs) ** 2, mask).item(),
            "entropy": None if ent is None else ent.item(),
        }
    return loss, stats
