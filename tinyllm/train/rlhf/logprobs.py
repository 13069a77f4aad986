"""Per-token log-probabilities, entropy and KL: what RLHF reads off a language model's logits.

For a sequence whose token at position t+1 was produced from the logits z_t at position t:

    log π(a_t)  = z_t[a_t] − logsumexp(z_t)                the chosen token's log-probability
    H_t         = −Σ_v π(v) log π(v)                       the entropy of the next-token distribution
    KL_t        = log π(a_t) − log π_ref(a_t)              the sampled (k1) estimate of KL(π || π_ref)

KL_t is what InstructGPT and TRL subtract from the reward at each token: its expectation
over a_t ~ π is exactly KL(π_t || π_ref,t) = Σ_v π(v) (log π(v) − log π_ref(v)) (kl_exact), and
it costs one gathered number per token instead of a sum over the vocabulary. A single sample of
it can be negative; the mean over many is not.

Example: π = softmax([0, 0]) = [0.5, 0.5], π_ref = [0.9, 0.1]: KL = 0.5 log(0.5/0.9) + 0.5 log(0.5/0.1) = 0.511;
sampling a = 0 gives k1 = log(0.5/0.9) = −0.588, a = 1 gives log(0.5/0.1) = 1.609; their mean is 0.511.
"""

from __future__ import annotations

from tinyllm import functional as F


def token_logprobs(logits, tokens):
    """log π(tokens) (B, T) from logits (B, T, V) and integer tokens (B, T) (a Tensor with the logits' graph)."""
    B, T, V = logits.shape
    logp = F.log_softmax(logits, dim=-1)                                  # (B, T, V)
    return logp.gather(-1, tokens.reshape(B, T, 1)).reshape(B, T)         # (B, T, 1) -> (B, T)


def entropy(logits):
    """H (B, T): the entropy of softmax(logits) at every position, in nats."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def kl_exact(logits, ref_logits):
    """KL(π || π_ref) (B, T) over the whole vocabulary: what the sampled KL_t estimates."""
    logp, logq = F.log_softmax(logits, dim=-1), F.log_softmax(ref_logits, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)
