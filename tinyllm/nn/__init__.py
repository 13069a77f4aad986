"""tinyllm.nn: layers with their parameters, named as in torch.nn.

    Module, Parameter          registration, state_dict, to(device), train/eval   (module.py)
    ModuleList, Sequential,    containers                                          (container.py)
    ModuleDict
    Linear                     y = x Wᵀ + b                                         (linear.py)
    Embedding                  token id -> vector                                   (embedding.py)
    LayerNorm, RMSNorm         per-token normalization                              (norms.py)
    Dropout                    random zeroing while training                        (dropout.py)
    GELU, ReLU, SiLU, Tanh     activations as modules                               (activation.py)
    init                       weight initialization recipes                        (init.py)
"""

from tinyllm.nn import init
from tinyllm.nn.activation import GELU, ReLU, SiLU, Tanh
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.embedding import Embedding
from tinyllm.nn.linear import Linear
from tinyllm.nn.container import ModuleDict, ModuleList, Sequential
from tinyllm.nn.module import Module, Parameter
from tinyllm.nn.norms import LayerNorm, RMSNorm

__all__ = [
    "Dropout", "Embedding", "GELU", "ReLU", "SiLU", "Tanh", "LayerNorm", "Linear", "Module", "ModuleDict", "ModuleList", "Parameter",
    "RMSNorm", "Sequential", "init",
]
