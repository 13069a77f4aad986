"""The tinyllm GPT architecture in PyTorch (nanoGPT's model.py, with tinyllm's options): the test oracle.

Same parameter names as ``tinyllm.nn.GPT`` (GPT-2's), same layout of the fused
QKV projection (all query heads, then key heads, then value heads), same
initialization recipe, same loss (mean cross-entropy, ignore_index=-100), so a
tinyllm state dict loads key for key and both compute the same numbers:

    import torch_gpt
    ref = torch_gpt.GPT.from_arrays(config, {name: numpy_array, ...})   # config: a tinyllm GPTConfig,
    logits, loss = ref(torch.tensor(x), torch.tensor(y))                 # or any object/dict with its fields

It depends on torch only (``state_from_tinyllm`` imports tinyllm lazily), so the
benchmarks reuse it as the PyTorch reference. Options: norm "layernorm" |
"rmsnorm", activation "gelu" | "gelu_tanh" | "relu" | "silu", n_kv_head
(grouped-query attention via SDPA's enable_gqa), bias, tie_embeddings,
pos_encoding "learned" | "sinusoidal" | "rope" | "alibi" | "none" (written here
from the papers and Hugging Face's Llama / BLOOM code, not from tinyllm's), rope_theta, dropout;
gated MLPs "swiglu" | "geglu" (Hugging Face's LlamaMLP: down(act(gate(x)) * up(x)), d_ff by LLaMA's
rule at a multiple of 64), norm_position "pre" | "post" (post: norm(x + f(x)), no final norm), causal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

_DEFAULTS = dict(d_ff=None, dropout=0.0, bias=True, tie_embeddings=True, pos_encoding="learned",
                 norm="layernorm", activation="gelu", n_kv_head=None, attention="full", norm_eps=1e-5,
                 rope_theta=10000.0, norm_position="pre", causal=True)
_REQUIRED = ("vocab_size", "context_length", "n_layer", "n_head", "d_model")


def resolve_config(config) -> SimpleNamespace:
    """A namespace with every field, from a dict or any object with the fields as attributes."""
    get = config.get if isinstance(config, Mapping) else (lambda k, d=None: getattr(config, k, d))
    c = SimpleNamespace(**{k: get(k) for k in _REQUIRED}, **{k: get(k, v) for k, v in _DEFAULTS.items()})
    gated = c.activation in ("swiglu", "geglu")  # LLaMA: hidden = 2/3 · 4d, rounded up (to 64 here)
    c.d_ff = c.d_ff or (-(-int(8 * c.d_model / 3) // 64) * 64 if gated else 4 * c.d_model)
    c.n_kv_head = c.n_kv_head or c.n_head
    if c.pos_encoding not in ("learned", "sinusoidal", "rope", "alibi", "none") or c.attention != "full":
        raise NotImplementedError(f"torch_gpt: pos_encoding={c.pos_encoding!r}, attention={c.attention!r}")
    return c


def _norm(c):
    if c.norm == "layernorm":
        return nn.LayerNorm(c.d_model, eps=c.norm_eps, bias=c.bias)
    if c.norm == "rmsnorm":
        return nn.RMSNorm(c.d_model, eps=c.norm_eps)
    raise ValueError(f"unknown norm {c.norm!r}")


def _activation(name):
    return {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "relu": nn.ReLU(), "silu": nn.SiLU()}[name]


def rotate_half(x):  # Hugging Face's modeling_llama.rotate_half
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(T, hs, theta):  # Hugging Face's LlamaRotaryEmbedding (default rope type), in float64 then float32
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().float(), emb.sin().float()


def alibi_slopes(n):  # Press et al.'s get_slopes (github.com/ofirpress/attention_with_linear_biases)
    def power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n - closest]


def sinusoidal(T, d):  # Vaswani et al. §3.5, as in The Annotated Transformer
    pe = torch.zeros(T, d, dtype=torch.float64)
    position = torch.arange(T, dtype=torch.float64)[:, None]
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * -(math.log(10000.0) / d))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.float()


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pos_encoding, self.rope_theta = c.pos_encoding, c.rope_theta
        self.n_head, self.n_kv_head, self.head_dim = c.n_head, c.n_kv_head, c.d_model // c.n_head
        self.c_attn = nn.Linear(c.d_model, c.d_model + 2 * c.n_kv_head * self.head_dim, bias=c.bias)
        self.c_proj = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.dropout = c.dropout
        self.resid_dropout = nn.Dropout(c.dropout)
        self.causal = c.causal

    def forward(self, x):
        B, T, C = x.size()
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([C, nkv * hs, nkv * hs], dim=2)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, nkv, hs).transpose(1, 2)
        mask, causal = None, self.causal
        if self.pos_encoding == "rope":
            cos, sin = rope_cos_sin(T, hs, self.rope_theta)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        elif self.pos_encoding == "alibi":  # the paper: -m·(i - j) below the diagonal, -inf above
            i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
            slopes = torch.tensor(alibi_slopes(nh), dtype=torch.float64)[:, None, None]
            mask = -slopes * (i - j).abs() if not self.causal else \
                (-slopes * (i - j)).masked_fill(j > i, float("-inf"))
            mask = mask.float()
            causal = False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=causal, enable_gqa=nkv != nh)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gated = c.activation in ("swiglu", "geglu")
        if self.gated:  # LlamaMLP's gate_proj
            self.c_gate = nn.Linear(c.d_model, c.d_ff, bias=c.bias)
        self.c_fc = nn.Linear(c.d_model, c.d_ff, bias=c.bias)
        self.act = {"swiglu": nn.SiLU(), "geglu": nn.GELU()}[c.activation] if self.gated else _activation(c.activation)
        self.c_proj = nn.Linear(c.d_ff, c.d_model, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x):
        h = self.act(self.c_gate(x)) * self.c_fc(x) if self.gated else self.act(self.c_fc(x))
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = _norm(c)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = _norm(c)
        self.mlp = MLP(c)
        self.post = c.norm_position == "post"

    def forward(self, x):
        if self.post:  # Vaswani et al. 2017
            x = self.ln_1(x + self.attn(x))
            return self.ln_2(x + self.mlp(x))
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    IGNORE_INDEX = -100

    def __init__(self, config):
        super().__init__()
        c = self.config = resolve_config(config)
        parts = dict(wte=nn.Embedding(c.vocab_size, c.d_model))
        if c.pos_encoding == "learned":
            parts["wpe"] = nn.Embedding(c.context_length, c.d_model)
        parts.update(drop=nn.Dropout(c.dropout), h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]))
        if c.norm_position == "pre":
            parts["ln_f"] = _norm(c)
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(torch.arange(T, dtype=torch.long, device=idx.device))
        elif self.config.pos_encoding == "sinusoidal":  # "we multiply those weights by sqrt(d_model)" (§3.4)
            x = x * math.sqrt(self.config.d_model) + sinusoidal(T, self.config.d_model)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x) if "ln_f" in self.transformer else x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=self.IGNORE_INDEX)
        return logits, loss

    def num_parameters(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a tied weight once
        if non_embedding:
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.transformer.wte.weight.numel()
        return n

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas=(0.9, 0.95)):
        """nanoGPT's AdamW: weight decay on the 2-D weights (matrices, embeddings), none on biases and norms."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)

    @classmethod
    def from_arrays(cls, config, state: Mapping) -> GPT:
        """A model with the given weights: name -> array (NumPy or anything torch.as_tensor takes).

        A tied model accepts the state with or without ``lm_head.weight`` (save_pretrained leaves it out).
        """
        model = cls(config)
        tensors = {k: torch.as_tensor(np.asarray(v)).clone() for k, v in state.items()}
        if model.config.tie_embeddings and "lm_head.weight" not in tensors:
            tensors["lm_head.weight"] = tensors["transformer.wte.weight"]
        model.load_state_dict(tensors, strict=True)
        return model


def state_from_tinyllm(model) -> dict:
    """name -> host NumPy copy of every tensor of a tinyllm model's state dict."""
    import tinyllm

    return {k: tinyllm.to_numpy(v.data).copy() for k, v in model.state_dict().items()}
