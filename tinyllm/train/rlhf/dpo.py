"""DPO: learn from preference pairs directly, with no reward model and no sampling (Rafailov et al. 2023).

RLHF's objective, max E[r(x, y)] − β·KL(π || π_ref), has a closed-form optimum
π*(y|x) ∝ π_ref(y|x)·exp(r(x, y)/β). Turned around, every policy defines an implicit reward
r̂(x, y) = β·log(π(y|x) / π_ref(y|x)) (plus a term of x alone, which cancels in a pair), and
the Bradley-Terry likelihood of the preferences becomes a loss on the policy itself:

    z     = β·[(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))]
    loss  = −log σ(z)                                    averaged over the pairs (y_w preferred)
    ∂loss/∂log π(y_w|x) = −β·σ(−z),   ∂loss/∂log π(y_l|x) = +β·σ(−z)

log π(y|x) is the sum of the response tokens' log-probabilities. A pair the policy already
ranks far more strongly than the reference does (z large) contributes almost nothing.

Worked example (β = 0.1): policy −10, −12; reference −11, −11 -> z = 0.1·((1) − (−1)) = 0.2,
loss = −log σ(0.2) = 0.598, the chosen and rejected rewards 0.1 and −0.1.
"""

from __future__ import annotations

from tinyllm import functional as F


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float = 0.1):
    """(loss, chosen_rewards, rejected_rewards): the mean DPO loss (0-d Tensor), the implicit rewards β·log(π/π_ref)
    (B,) of each response (Tensors without a graph). All four log-probabilities are (B,) sums over response tokens."""
    if not beta > 0:
        raise ValueError(f"dpo_loss: beta must be > 0 (the KL strength), got {beta!r}")
    chosen = policy_chosen_logps - ref_chosen_logps      # (B,) log π/π_ref of y_w
    rejected = policy_rejected_logps - ref_rejected_logps
    z = (chosen - rejected) * beta
    loss = -F.logsigmoid(z).mean()
    return loss, (chosen * beta).detach(), (rejected * beta).detach()
