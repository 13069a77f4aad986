"""tinyllm.optim: optimizers, learning-rate schedules and gradient clipping (the torch.optim API).

    SGD, AdamW              update rules (Polyak / Nesterov momentum; Loshchilov & Hutter 2019)
    Optimizer               the base: param_groups, zero_grad, state_dict / load_state_dict
    cosine_with_warmup      lr(step): linear warmup, cosine decay, floor
    WarmupCosine            a scheduler that applies it to an optimizer's groups
    clip_grad_norm_         rescale gradients by their global norm
"""

from tinyllm.optim.adamw import AdamW
from tinyllm.optim.clip import clip_grad_norm_
from tinyllm.optim.optimizer import Optimizer
from tinyllm.optim.schedule import WarmupCosine, cosine_with_warmup
from tinyllm.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "AdamW", "cosine_with_warmup", "WarmupCosine", "clip_grad_norm_"]
