"""tinyllm.train.rlhf: learning from preferences (InstructGPT, Ouyang et al. 2022; DPO, Rafailov et al. 2023).

    compute_gae, masked_whiten        advantages by GAE, whitened over real tokens   (gae.py)
    token_logprobs, entropy, kl_exact what a policy's logits say per token            (logprobs.py)
    FixedKLController, AdaptiveKLController   the KL coefficient β                    (kl_control.py)
    ppo_loss                          the clipped surrogate, value clipping, entropy (ppo_loss.py)
    dpo_loss                          preferences as a loss on the policy itself     (dpo.py)
"""

from tinyllm.train.rlhf.dpo import dpo_loss
from tinyllm.train.rlhf.gae import compute_gae, masked_mean, masked_whiten
from tinyllm.train.rlhf.kl_control import AdaptiveKLController, FixedKLController
from tinyllm.train.rlhf.logprobs import entropy, kl_exact, token_logprobs
from tinyllm.train.rlhf.ppo_loss import ppo_loss

__all__ = [
    "AdaptiveKLController", "FixedKLController", "compute_gae", "dpo_loss", "entropy", "kl_exact", "masked_mean",
    "masked_whiten", "ppo_loss", "token_logprobs",
]
