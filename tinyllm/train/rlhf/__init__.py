"""tinyllm.train.rlhf: learning from preferences (InstructGPT, Ouyang et al. 2022; DPO, Rafailov et al. 2023).

    compute_gae, masked_whiten        advantages by GAE, whitened over real tokens   (gae.py)
    token_logprobs, entropy, kl_exact what a policy's logits say per token            (logprobs.py)
    FixedKLController, AdaptiveKLController   the KL coefficient β                    (kl_control.py)
    ppo_loss                          the clipped surrogate, value clipping, entropy (ppo_loss.py)
    PolicyWithValue, generate_rollout, evaluate_policy   the policy and its samples  (policy.py)
    RewardModel, PreferencePairs, train_reward_model     Bradley-Terry on pairs      (reward.py)
    PPOConfig, ppo_train              the RLHF loop                                  (ppo.py)
    dpo_loss, train_dpo               preferences as a loss on the policy itself     (dpo.py)
"""

from tinyllm.train.rlhf.dpo import dpo_loss, sequence_logprobs, train_dpo
from tinyllm.train.rlhf.gae import compute_gae, masked_mean, masked_whiten
from tinyllm.train.rlhf.kl_control import AdaptiveKLController, FixedKLController
from tinyllm.train.rlhf.logprobs import entropy, kl_exact, token_logprobs
from tinyllm.train.rlhf.policy import PolicyWithValue, Rollout, copy_model, evaluate_policy, generate_rollout
from tinyllm.train.rlhf.ppo import PPOConfig, PPOResult, ppo_train
from tinyllm.train.rlhf.ppo_loss import ppo_loss
from tinyllm.train.rlhf.reward import (
    PreferencePairs,
    RewardModel,
    bradley_terry_loss,
    reward_accuracy,
    train_reward_model,
)

__all__ = [
    "AdaptiveKLController", "FixedKLController", "PPOConfig", "PPOResult", "PolicyWithValue", "PreferencePairs",
    "RewardModel", "Rollout", "bradley_terry_loss", "compute_gae", "copy_model", "dpo_loss", "entropy",
    "evaluate_policy", "generate_rollout", "kl_exact", "masked_mean", "masked_whiten", "ppo_loss", "ppo_train",
    "reward_accuracy", "sequence_logprobs", "token_logprobs", "train_dpo", "train_reward_model",
]
