"""PPO against a reward model, the RLHF step of InstructGPT (Ouyang et al. 2022; Ziegler et al. 2019; TRL).

One PPO step:

    1. rollout   B prompts -> B sampled responses (GPT.generate), then one forward pass each of the
                 policy (log π_old, values V_old), the frozen reference (log π_ref) and the reward model
                 (a score s per response, read at its last token)
    2. rewards   per token: r_t = −β·(log π_old − log π_ref)_t, and + s at the response's last token
    3. GAE       advantages A and returns R (gae.py), A whitened over the batch's real tokens
    4. update    ppo_epochs passes over shuffled minibatches: ppo_loss (clipped surrogate, clipped
                 value loss, entropy bonus), AdamW, the gradient norm clipped
    5. β         the KL controller sees the batch's mean KL per response (kl_control.py)

The KL term keeps the policy near the model it started from, where the reward model's
judgement was learned; with β = 0 nothing stops the policy from drifting to text the reward
model scores highly and no person (or here, no judge) would: reward hacking. Dropout is off
throughout (the policy runs in eval mode), so log π_old and the update's first log π agree.

Each step's numbers go to ``history`` and, given an out_dir, to out_dir/metrics.jsonl:
step, score (the reward model's mean), true_reward (the judge's, when given), kl (mean per
response), kl_coef, entropy, clipfrac, vf_loss, pg_loss, approx_kl, length, elapsed_s.

Example:
    result = ppo_train(policy_gpt, reward_model, prompts, PPOConfig(steps=40), judge=judge, out_dir="out/ppo")
    result.policy.gpt.save_pretrained("out/ppo")
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm.optim import AdamW, clip_grad_norm_
from tinyllm.train.rlhf.gae import compute_gae, masked_whiten
from tinyllm.train.rlhf.kl_control import AdaptiveKLController, FixedKLController
from tinyllm.train.rlhf.logprobs import entropy as token_entropy
from tinyllm.train.rlhf.policy import PolicyWithValue, copy_model, generate_rollout, response_logprobs
from tinyllm.train.rlhf.ppo_loss import ppo_loss


@dataclass(frozen=True)
class PPOConfig:
    steps: int = 40                # PPO steps: a rollout and its update each
    batch_size: int = 32           # responses per rollout
    minibatch_size: int = 16
    ppo_epochs: int = 4            # passes over each rollout
    response_tokens: int = 32      # at most this many tokens per response
    learning_rate: float = 1e-4
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    init_kl_coef: float = 0.2      # β; 0 turns the penalty off
    adaptive_kl: bool = True
    target_kl: float = 6.0         # nats per response (Ziegler et al.'s target)
    kl_horizon: int = 10_000
    grad_clip: float = 1.0
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "minibatch_size", "ppo_epochs", "response_tokens"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"PPOConfig: {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.minibatch_size > self.batch_size:
            raise ValueError(f"PPOConfig: minibatch_size={self.minibatch_size} is larger than batch_size="
                             f"{self.batch_size}")
        if not (self.learning_rate > 0 and self.init_kl_coef >= 0 and 0 < self.cliprange and self.temperature > 0):
            raise ValueError("PPOConfig: learning_rate, cliprange and temperature must be > 0 and init_kl_coef >= 0")


@dataclass
class PPOResult:
    policy: PolicyWithValue
    history: list


def _rewards(score, logprobs, ref_logprobs, mask, last, beta):
    """(rewards (B, R), kl (B, R)): −β·KL per real token, plus the score at each response's last token."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -beta * kl
    rewards[np.arange(len(score)), last] += score
    return rewards, kl


def ppo_train(gpt, reward_model, prompts: np.ndarray, cfg: PPOConfig = PPOConfig(), *, ref=None, judge=None,
              stop_id: int | None = None, out_dir=None, log=None, on_step=None) -> PPOResult:
    """Tune `gpt` (in place) by PPO on prompts (N, P) against reward_model; see the module docstring.

    ref: the frozen reference (default: a copy of gpt as it starts); judge(rollout) -> (B,) true rewards,
    only measured, never trained on; on_step(step, record) returning True stops after that step.
    """
    log = log or (lambda *a, **k: None)
    prompts = np.asarray(prompts, dtype=np.int64)
    rng = np.random.default_rng(cfg.seed)
    ref = copy_model(gpt) if ref is None else ref
    policy = PolicyWithValue(gpt)
    policy.eval()  # no dropout: log π_old and the first update's log π must agree
    reward_model.eval()
    opt = AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.learning_rate, weight_decay=0.0)
    kl_ctl = (AdaptiveKLController(cfg.init_kl_coef, cfg.target_kl, cfg.kl_horizon) if cfg.adaptive_kl
              and cfg.init_kl_coef > 0 else FixedKLController(cfg.init_kl_coef))
    device, history = gpt.device, []
    metrics = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        metrics = open(Path(out_dir) / "metrics.jsonl", "w")
        (Path(out_dir) / "ppo_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    t0 = time.perf_counter()
    dev = lambda a: tinyllm.tensor(a.astype(np.float32), device=device)  # noqa: E731  host (B, R) -> the device
    try:
        for step in range(cfg.steps):
            # 1. rollout
            ro = generate_rollout(gpt, prompts[rng.integers(0, len(prompts), cfg.batch_size)], cfg.response_tokens,
                                  rng, stop_id=stop_id, temperature=cfg.temperature)
            x, P, mask = ro.sequences, ro.prompt_len, ro.mask
            with tinyllm.no_grad():
                logits, values = policy(x)
                old_logp = backend.to_numpy(response_logprobs(logits, x, P).data)                   # (B, R)
                old_values = backend.to_numpy(values[:, P - 1:-1].data) * mask                      # (B, R)
                ref_logp = backend.to_numpy(response_logprobs(ref(x)[0], x, P).data)
                score = backend.to_numpy(reward_model(x, ro.last).data).astype(np.float64)         # (B,)
            # 2. rewards, 3. advantages
            rewards, kl = _rewards(score, old_logp, ref_logp, mask, ro.last - P, kl_ctl.value)
            adv, returns = compute_gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            adv = masked_whiten(adv, mask)
            # 4. update
            stats = []
            for _ in range(cfg.ppo_epochs):
                order = rng.permutation(cfg.batch_size)
                for i in range(0, cfg.batch_size, cfg.minibatch_size):
                    mb = order[i:i + cfg.minibatch_size]
                    logits, values = policy(x[mb])
                    logp = response_logprobs(logits, x[mb], P)
                    loss, st = ppo_loss(logp, values[:, P - 1:-1], dev(old_logp[mb]), dev(old_values[mb]),
                                        dev(adv[mb]), dev(returns[mb]), dev(mask[mb]), cliprange=cfg.cliprange,
                                        cliprange_value=cfg.cliprange_value, vf_coef=cfg.vf_coef,
                                        entropy=token_entropy(logits[:, P - 1:-1]), ent_coef=cfg.ent_coef)
                    loss.backward()
                    clip_grad_norm_(policy.parameters(), cfg.grad_clip)
                    opt.step()
                    opt.zero_grad()
                    stats.append(st)
            # 5. the KL coefficient, and the record
            mean_kl = float(kl.sum(1).mean())
            rec = {"step": step, "score": float(score.mean()),
                   "true_reward": None if judge is None else float(np.mean(judge(ro))),
                   "kl": mean_kl, "kl_coef": kl_ctl.value, "length": float(mask.sum(1).mean()),
                   **{k: float(np.mean([s[k] for s in stats])) for k in
                      ("entropy", "clipfrac", "vf_loss", "pg_loss", "approx_kl")},
                   "elapsed_s": time.perf_counter() - t0}
            kl_ctl.update(mean_kl, cfg.batch_size)
            history.append(rec)
            if metrics is not None:
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
            log(f"ppo step {step}: score {rec['score']:.3f}"
                + ("" if rec["true_reward"] is None else f", true reward {rec['true_reward']:.3f}")
                + f", kl {mean_kl:.2f}, beta {rec['kl_coef']:.3f}, clipfrac {rec['clipfrac']:.3f}")
            if on_step is not None and on_step(step, rec):
                break
    finally:
        if metrics is not None:
            metrics.close()
    return PPOResult(policy=policy, history=history)
