"""The policy RLHF trains, its rollouts, and how a policy is scored.

A rollout is what PPO learns from: B prompts of P tokens, each continued by the policy
with R sampled tokens (``GPT.generate``, temperature 1), so a batch is one (B, P + R) array
and needs no padding. A response may end early at a stop token (a newline, say): its
tokens after the stop are still there but masked out, and everything downstream (log-probs,
rewards, advantages, losses) counts only mask = 1:

    sequences  (B, P + R)   prompt ids, then response ids
    mask       (B, R)       1 for response tokens up to and including the first stop token

Response token j sits at position P + j; the logits that chose it are those of position
P + j − 1, so the response's log-probabilities and values are read at positions P − 1 .. P + R − 2.

The value head (``PolicyWithValue``, as TRL's AutoModelForCausalLMWithValueHead) is a Linear
C -> 1 on the GPT's final hidden states: V(s_t) for the state "prompt + response so far"
at every position, sharing the whole trunk with the policy (InstructGPT initializes its value
function from the reward model instead; sharing is cheaper and TRL's default).

``evaluate_policy`` samples responses to held-out prompts and reports what RLHF trades off:
the reward model's score, the true reward (when a judge is given) and KL(π || π_ref) per
response, the sum over its tokens of log π − log π_ref.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm.nn import init
from tinyllm.nn.gpt import GPT
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.train.rlhf.logprobs import token_logprobs


class PolicyWithValue(Module):
    """``logits, values = policy(idx)``: a GPT's logits (B, T, V) and a scalar value per position (B, T)."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.gpt = gpt
        self.v_head = Linear(gpt.config.d_model, 1, device=gpt.device)
        init.normal_(self.v_head.weight, 0.0, 0.02)
        init.zeros_(self.v_head.bias)  # values start near 0

    def forward(self, idx):
        h = self.gpt.hidden_states(idx)                  # (B, T, C)
        B, T, _ = h.shape
        return self.gpt.lm_head(h), self.v_head(h).reshape(B, T)  # (B, T, V), (B, T, 1) -> (B, T)


def copy_model(gpt: GPT) -> GPT:
    """A frozen copy of `gpt` in eval mode: the reference policy π_ref."""
    with backend.use_device(gpt.device):
        ref = GPT(gpt.config)
    ref.load_state_dict(gpt.state_dict())
    return ref.eval().requires_grad_(False)


@dataclass
class Rollout:
    sequences: np.ndarray  # (B, P + R) int64, on the host
    mask: np.ndarray       # (B, R) float32, 1 for real response tokens
    prompt_len: int

    @property
    def last(self) -> np.ndarray:
        """(B,) the position of each response's last real token (where the reward model reads its score)."""
        return self.prompt_len + np.maximum(self.mask.sum(1).astype(np.int64), 1) - 1


def response_mask(responses: np.ndarray, stop_id: int | None) -> np.ndarray:
    """(B, R) 1 up to and including the first stop token: response_mask([[5, 9, 5]], 9) -> [[1, 1, 0]]."""
    B, R = responses.shape
    if stop_id is None:
        return np.ones((B, R), dtype=np.float32)
    is_stop = responses == stop_id
    first = np.where(is_stop.any(1), is_stop.argmax(1), R - 1)  # (B,) index of the last real token
    return (np.arange(R)[None] <= first[:, None]).astype(np.float32)


def generate_rollout(gpt: GPT, prompts: np.ndarray, response_tokens: int, rng, *, stop_id: int | None = None,
                     temperature: float = 1.0, top_k: int | None = None) -> Rollout:
    """Sample a response of up to response_tokens for every prompt (B, P) -> Rollout."""
    prompts = np.asarray(prompts, dtype=np.int64)
    P = prompts.shape[1]
    seqs = gpt.generate(prompts, response_tokens, temperature=temperature, top_k=top_k, seed=rng)  # (B, P + R)
    return Rollout(seqs, response_mask(seqs[:, P:], stop_id), P)


def response_logprobs(logits, sequences, prompt_len: int):
    """log π of every response token (B, R) from the logits (B, P + R, V) of the whole sequences."""
    P = prompt_len
    tokens = tinyllm.tensor(sequences[:, P:], device=logits.device)     # (B, R)
    return token_logprobs(logits[:, P - 1:-1], tokens)                   # logits at P-1 .. P+R-2 chose them


@tinyllm.no_grad()
def sequence_kl(gpt: GPT, ref: GPT, rollout: Rollout) -> np.ndarray:
    """(B,) Σ over each response's real tokens of log π − log π_ref: the sampled KL of each response."""
    x = rollout.sequences
    lp = response_logprobs(gpt(x)[0], x, rollout.prompt_len)
    lr = response_logprobs(ref(x)[0], x, rollout.prompt_len)
    return (backend.to_numpy((lp - lr).data) * rollout.mask).sum(1)


@tinyllm.no_grad()
def evaluate_policy(gpt: GPT, ref: GPT, reward_model, prompts: np.ndarray, response_tokens: int, *, judge=None,
                    seed: int = 0, stop_id: int | None = None, batch_size: int = 64) -> dict:
    """{"score", "true_reward" (None without a judge), "kl", "length"}: means over one sampled response per prompt.

    judge(rollout) -> (B,) the true reward of each response (the lab's programmatic judge).
    """
    rng = np.random.default_rng(seed)
    scores, true, kls, lengths = [], [], [], []
    was = gpt.training
    gpt.eval()
    for i in range(0, len(prompts), batch_size):
        ro = generate_rollout(gpt, prompts[i:i + batch_size], response_tokens, rng, stop_id=stop_id)
        scores.append(backend.to_numpy(reward_model(ro.sequences, ro.last).data))
        kls.append(sequence_kl(gpt, ref, ro))
        lengths.append(ro.mask.sum(1))
        if judge is not None:
            true.append(np.asarray(judge(ro), dtype=np.float64))
    gpt.train(was)
    return {"score": float(np.concatenate(scores).mean()),
            "true_reward": float(np.concatenate(true).mean()) if judge is not None else None,
            "kl": float(np.concatenate(kls).mean()), "length": float(np.concatenate(lengths).mean())}
