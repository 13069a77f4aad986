"""The reward model: a GPT that reads a prompt and a response and says how good the response is.

People compare two responses more consistently than they score one, so InstructGPT
(Ouyang et al. 2022 §3.5) learns a scalar r(x, y) from comparisons: y_w preferred to y_l.
Bradley and Terry (1952) model a comparison as a coin biased by the difference of scores,

    P(y_w ≻ y_l | x) = σ(r(x, y_w) − r(x, y_l))
    loss             = −log σ(r(x, y_w) − r(x, y_l))          averaged over the pairs

so only differences are learned (adding a constant to r changes nothing). The model is the
GPT's trunk with a scalar head on the final hidden state of the response's last token
(the only position that has read all of it), initialized from the policy being tuned, as
InstructGPT initializes its reward model from the SFT model:

    r(x, y) = w · ln_f(h)[last] + b            h: the GPT's hidden states of prompt + response

Accuracy on held-out pairs (how often r(y_w) > r(y_l)) is the number to watch: the reward
model is only a proxy for the preferences, and PPO will find wherever the proxy is wrong.

Example:
    >>> rm = RewardModel(GPT.from_pretrained("out/base"))
    >>> history = train_reward_model(rm, pairs, epochs=3)   # pairs: PreferencePairs
    >>> reward_accuracy(rm, val_pairs); rm.save("out/reward"); RewardModel.load("out/reward")
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm import functional as F
from tinyllm.nn import init
from tinyllm.nn.gpt import GPT
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.optim import AdamW, clip_grad_norm_
from tinyllm.serialization import load, save

HEAD_NAME = "reward_head.safetensors"
HEAD_FORMAT = "tinyllm-reward-head-1"


class RewardModel(Module):
    """``scores = rm(idx, last)``: idx (B, T) ids, last (B,) the position to read -> (B,) scalar rewards."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.gpt = gpt
        C = gpt.config.d_model
        self.score = Linear(C, 1, device=gpt.device)
        init.normal_(self.score.weight, 0.0, 1 / math.sqrt(C + 1))  # TRL's reward-head init
        init.zeros_(self.score.bias)

    def forward(self, idx, last):
        h = self.gpt.hidden_states(idx)                                    # (B, T, C)
        B, T, C = h.shape
        last = np.asarray(last, dtype=np.int64)
        index = tinyllm.tensor(np.broadcast_to(last[:, None, None], (B, 1, C)).copy(), device=h.device)
        return self.score(h.gather(1, index).reshape(B, C)).reshape(B)     # (B, 1, C) -> (B, C) -> (B,)

    def save(self, directory) -> Path:
        """directory/: the trunk as a model folder (model.safetensors, config.json) + reward_head.safetensors."""
        directory = Path(directory)
        self.gpt.save_pretrained(directory)
        save({"format": HEAD_FORMAT, "weight": self.score.weight.detach(), "bias": self.score.bias.detach()},
             directory / HEAD_NAME)
        return directory

    @classmethod
    def load(cls, directory, device: str | None = None) -> RewardModel:
        """The reward model that `save` wrote, in eval mode."""
        directory = Path(directory)
        if not (directory / HEAD_NAME).is_file():
            raise FileNotFoundError(f"{directory} holds no reward model ({HEAD_NAME} missing); train one with "
                                    f"train_reward_model and save it with RewardModel.save")
        rm = cls(GPT.from_pretrained(directory, device=device))
        head = load(directory / HEAD_NAME, device=device)
        if head.get("format") != HEAD_FORMAT:
            raise ValueError(f"{directory / HEAD_NAME} is not a tinyllm reward head (format {HEAD_FORMAT!r})")
        rm.score.load_state_dict({"weight": head["weight"], "bias": head["bias"]})
        return rm.eval()


@dataclass
class PreferencePairs:
    """N comparisons: prompt + preferred response, prompt + the other; (N, P + R) ids, (N, R) response masks."""

    chosen: np.ndarray
    rejected: np.ndarray
    chosen_mask: np.ndarray
    rejected_mask: np.ndarray
    prompt_len: int

    def __len__(self) -> int:
        return len(self.chosen)

    def take(self, idx) -> PreferencePairs:
        return PreferencePairs(self.chosen[idx], self.rejected[idx], self.chosen_mask[idx], self.rejected_mask[idx],
                               self.prompt_len)

    def last(self, which: str) -> np.ndarray:
        """(N,) the position of each chosen/rejected response's last real token."""
        mask = self.chosen_mask if which == "chosen" else self.rejected_mask
        return self.prompt_len + np.maximum(mask.sum(1).astype(np.int64), 1) - 1

    def split(self, val_fraction: float, seed: int = 0) -> tuple[PreferencePairs, PreferencePairs]:
        order = np.random.default_rng(seed).permutation(len(self))
        n_val = max(1, int(round(val_fraction * len(self))))
        return self.take(order[n_val:]), self.take(order[:n_val])


def bradley_terry_loss(chosen_scores, rejected_scores):
    """−log σ(r_w − r_l), averaged: bradley_terry_loss([1.0], [1.0]) = log 2 = 0.693."""
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def pair_scores(rm: RewardModel, pairs: PreferencePairs):
    """(r_w, r_l) Tensors (N,): the chosen and the rejected responses' scores, one forward pass each."""
    return rm(pairs.chosen, pairs.last("chosen")), rm(pairs.rejected, pairs.last("rejected"))


@tinyllm.no_grad()
def reward_accuracy(rm: RewardModel, pairs: PreferencePairs, batch_size: int = 128) -> float:
    """The share of pairs where r(y_w) > r(y_l)."""
    was = rm.training
    rm.eval()
    hits = []
    for i in range(0, len(pairs), batch_size):
        rw, rl = pair_scores(rm, pairs.take(slice(i, i + batch_size)))
        hits.append(backend.to_numpy((rw - rl).data) > 0)
    rm.train(was)
    return float(np.concatenate(hits).mean())


def train_reward_model(rm: RewardModel, pairs: PreferencePairs, val_pairs: PreferencePairs | None = None, *,
                       epochs: int = 2, batch_size: int = 32, learning_rate: float = 1e-4, weight_decay: float = 0.0,
                       grad_clip: float = 1.0, seed: int = 0, log=None) -> list[dict]:
    """AdamW on the Bradley-Terry loss, `epochs` passes over shuffled minibatches -> one record per epoch.

    Each record: {"epoch", "loss" (the epoch's mean), "train_accuracy", "val_accuracy" (None without val_pairs)}.
    """
    log = log or (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    opt = AdamW([p for p in rm.parameters() if p.requires_grad], lr=learning_rate, weight_decay=weight_decay)
    history = []
    for epoch in range(epochs):
        rm.train()
        losses, hits = [], []
        order = rng.permutation(len(pairs))
        for i in range(0, len(order), batch_size):
            batch = pairs.take(order[i:i + batch_size])
            rw, rl = pair_scores(rm, batch)
            loss = bradley_terry_loss(rw, rl)
            loss.backward()
            clip_grad_norm_(rm.parameters(), grad_clip)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            hits.append(backend.to_numpy((rw - rl).data) > 0)
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_accuracy": float(np.concatenate(hits).mean()),
               "val_accuracy": None if val_pairs is None else reward_accuracy(rm, val_pairs)}
        history.append(rec)
        log(f"reward model epoch {rec['epoch']}: loss {rec['loss']:.4f}, train accuracy {rec['train_accuracy']:.3f}"
            + ("" if rec["val_accuracy"] is None else f", val accuracy {rec['val_accuracy']:.3f}"))
    rm.eval()
    return history
