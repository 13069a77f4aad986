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

``train_dpo`` runs it on the same PreferencePairs the reward model learns from: log π_ref is
computed once, then epochs of minibatches, AdamW on the policy alone.

Worked example (β = 0.1): policy −10, −12; reference −11, −11 -> z = 0.1·((1) − (−1)) = 0.2,
loss = −log σ(0.2) = 0.598, the chosen and rejected rewards 0.1 and −0.1.
"""

from __future__ import annotations

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm import functional as F
from tinyllm.optim import AdamW, clip_grad_norm_
from tinyllm.train.rlhf.policy import copy_model, response_logprobs


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


def sequence_logprobs(gpt, sequences, mask, prompt_len: int):
    """log π(y|x) (B,): the sum of the response tokens' log-probabilities (mask (B, R) marks the real ones)."""
    logp = response_logprobs(gpt(sequences)[0], sequences, prompt_len)          # (B, R)
    return (logp * tinyllm.tensor(mask.astype(np.float32), device=logp.device)).sum(-1)


def train_dpo(gpt, pairs, ref=None, *, beta: float = 0.1, epochs: int = 2, batch_size: int = 32,
              learning_rate: float = 1e-4, grad_clip: float = 1.0, seed: int = 0, log=None) -> list[dict]:
    """Tune `gpt` (in place) by DPO on PreferencePairs -> one record per epoch {"epoch", "loss", "accuracy",
    "margin"} (accuracy: pairs whose implicit reward ranks y_w first; margin: the mean r̂(y_w) − r̂(y_l)).

    ref: the frozen reference (default: a copy of gpt as it starts). Dropout is off (eval mode).
    """
    log = log or (lambda *a, **k: None)
    ref = copy_model(gpt) if ref is None else ref
    rng = np.random.default_rng(seed)
    P = pairs.prompt_len
    with tinyllm.no_grad():  # the reference's log-probabilities never change: computed once
        ref_c = backend.to_numpy(sequence_logprobs(ref, pairs.chosen, pairs.chosen_mask, P).data)
        ref_r = backend.to_numpy(sequence_logprobs(ref, pairs.rejected, pairs.rejected_mask, P).data)
    gpt.eval()
    opt = AdamW([p for p in gpt.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0)
    history = []
    for epoch in range(epochs):
        losses, margins = [], []
        order = rng.permutation(len(pairs))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            b = pairs.take(idx)
            pc = sequence_logprobs(gpt, b.chosen, b.chosen_mask, P)
            pr = sequence_logprobs(gpt, b.rejected, b.rejected_mask, P)
            loss, rw, rl = dpo_loss(pc, pr, tinyllm.tensor(ref_c[idx], device=pc.device),
                                    tinyllm.tensor(ref_r[idx], device=pc.device), beta)
            loss.backward()
            clip_grad_norm_([p for p in gpt.parameters() if p.requires_grad], grad_clip)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            margins.append(backend.to_numpy((rw - rl).data))
        m = np.concatenate(margins)
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "accuracy": float((m > 0).mean()),
               "margin": float(m.mean())}
        history.append(rec)
        log(f"dpo epoch {rec['epoch']}: loss {rec['loss']:.4f}, accuracy {rec['accuracy']:.3f}, "
            f"margin {rec['margin']:.3f}")
    return history
