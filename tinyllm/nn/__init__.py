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
    GPTConfig                  a GPT's architecture, a frozen dataclass             (config.py)
    CausalSelfAttention        masked multi-head / grouped-query attention          (attention.py)
    MLP                        the position-wise feed-forward network               (mlp.py)
    MoE                        a mixture of experts, a drop-in for the MLP (§8)      (moe.py)
    Block                      one pre-norm transformer layer                       (block.py)
    GPT                        the decoder-only language model                      (gpt.py)
    save/load_pretrained       a model folder: model.safetensors + config.json      (pretrained.py)
    attention_variants         Q/K/V experiments of chapter 4 (swap, tie, zero Q...) (attention_variants.py)
"""

from tinyllm.nn import init
from tinyllm.nn.activation import GELU, ReLU, SiLU, Tanh
from tinyllm.nn.attention import CausalSelfAttention
from tinyllm.nn.block import Block
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.container import ModuleDict, ModuleList, Sequential
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.embedding import Embedding
from tinyllm.nn.gpt import GPT
from tinyllm.nn.linear import Linear
from tinyllm.nn.mlp import MLP
from tinyllm.nn.module import Module, Parameter
from tinyllm.nn.moe import MoE
from tinyllm.nn.norms import LayerNorm, RMSNorm

__all__ = [
    "Block", "CausalSelfAttention", "GPT", "GPTConfig", "MLP", "MoE",
    "Dropout", "Embedding", "GELU", "ReLU", "SiLU", "Tanh", "LayerNorm", "Linear", "Module", "ModuleDict", "ModuleList",
    "Parameter", "RMSNorm", "Sequential", "init",
]
