"""Block: one pre-norm transformer decoder layer (GPT-2).

    x = x + attn(norm_1(x))       tokens exchange information (causally)
    x = x + mlp(norm_2(x))        each token is transformed on its own

Pre-norm (Xiong et al. 2020; GPT-2 moved the norms here from after the
residual add, where Vaswani et al. 2017 had them): the residual stream x is
never normalized, only what each branch reads from it, so the gradient flows
straight down the stack through the additions, and deep stacks train without
warm-up tricks. A final norm after the last block (``GPT.transformer.ln_f``)
closes the stream.

The norms are LayerNorm (with or without bias) or RMSNorm, by ``GPTConfig.norm``.
With ``GPTConfig.n_expert`` > 0, the blocks that ``config.is_moe_layer(layer)`` names hold a
mixture of experts (tinyllm/nn/moe.py) as their ``mlp``: the same place, the same shapes.

Post-norm (``GPTConfig.norm_position = "post"``, Vaswani et al. 2017; BERT)
normalizes the stream itself after each residual add:

    x = norm_1(x + attn(x))
    x = norm_2(x + mlp(x))

so every block's output has unit RMS, and the gradient to early layers passes
through 2·n_layer norms on its way down (Xiong et al. 2020: why post-norm needs
a learning-rate warm-up; chapter 10 measures it). The model then has no final
norm: the last block's output is normalized already.

Example: Block(GPTConfig(vocab_size=8, context_length=4, n_layer=1, n_head=2, d_model=4))
maps (B, T, 4) -> (B, T, 4); its parameters are ln_1.*, attn.c_attn.*, attn.c_proj.*,
ln_2.*, mlp.c_fc.*, mlp.c_proj.*.
"""

from __future__ import annotations

from tinyllm.nn.attention import CausalSelfAttention
from tinyllm.nn.config import NORMS, GPTConfig
from tinyllm.nn.mlp import MLP
from tinyllm.nn.module import Module
from tinyllm.nn.moe import MoE
from tinyllm.nn.norms import LayerNorm, RMSNorm


def make_norm(config: GPTConfig) -> Module:
    """LayerNorm(d_model) (bias if config.bias) or RMSNorm(d_model), eps = config.norm_eps."""
    if config.norm == "layernorm":
        return LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, eps=config.norm_eps)
    raise ValueError(f"unknown norm {config.norm!r}; expected one of {NORMS}")


class Block(Module):
    """(B, T, C) -> (B, T, C): x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig, layer: int = 0):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MoE.from_config(config) if config.is_moe_layer(layer) else MLP(config)  # layer: its index
        self.post_norm = config.norm_position == "post"

    def forward(self, x, cache=None, layer: int = 0, prefix_len=None):
        """cache, layer: a KVCache and this block's index in it; prefix_len: see CausalSelfAttention."""
        kw = dict(cache=cache, layer=layer)
        if prefix_len is not None:  # passed only when given: the labs' own attention modules take no prefix_len
            kw["prefix_len"] = prefix_len
        if self.post_norm:  # Vaswani et al. 2017: norm(x + f(x))
            x = self.ln_1(x + self.attn(x, **kw))
            return self.ln_2(x + self.mlp(x))
        x = x + self.attn(self.ln_1(x), **kw)
        return x + self.mlp(self.ln_2(x))
