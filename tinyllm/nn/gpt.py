"""GPT: a decoder-only transformer language model (GPT-2, Radford et al. 2019; nanoGPT).

Given token ids (B, T) it predicts, at every position, a distribution over the
next token:

    x      = wte[idx] + wpe[0..T-1]                        (B, T, C) token + position vectors
                                                           (or another GPTConfig.pos_encoding, §2;
                                                           "sinusoidal": √C · wte[idx] + PE[0..T-1])
    x      = Block_L(... Block_1(x))                       pre-norm attention + MLP, residuals
    logits = ln_f(x) W_headᵀ                               (B, T, V), W_head = wte when tied
                                                           (post-norm blocks, block.py: x W_headᵀ, no ln_f)
    loss   = mean over (b, t) of -log softmax(logits[b, t])[targets[b, t]]
             (+ the MoE layers' balance and z losses while training, §8; model.loss_parts has each part)

Parameter names are GPT-2's (as nanoGPT and Hugging Face's GPT2LMHeadModel),
so a GPT-2 checkpoint loads key for key:

    transformer.wte.weight (V, C)       transformer.wpe.weight (context_length, C)
    transformer.h.N.ln_1.{weight,bias}  transformer.h.N.attn.c_attn.{weight,bias} (C + 2·nkv·hs, C)
    transformer.h.N.attn.c_proj.*       transformer.h.N.ln_2.*   transformer.h.N.mlp.c_fc.*  mlp.c_proj.*
    transformer.ln_f.{weight,bias}      lm_head.weight (V, C)  (the same Parameter as wte when tied)

Initialization (GPT-2 §2.3, nanoGPT): Linear and Embedding weights ~ N(0, 0.02²),
biases 0, norms 1 (and 0); the two residual projections of every block
(attn.c_proj, mlp.c_proj) ~ N(0, (0.02/√(2·n_layer))²), because each block adds
two of them to the residual stream and the stream's variance would otherwise
grow with depth.

Example:
    >>> model = GPT(GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128))
    >>> logits, loss = model(x, y)            # x, y: int arrays (12, 64) -> logits (12, 64, 65), loss ()
    >>> model.generate(x[:1, :8], 100, temperature=0.8, top_k=10, seed=0).shape   # KV-cached (§6)
    (1, 108)
    >>> cache = model.make_cache(batch_size=1); logits, _ = model(x[:1, :8], cache=cache)  # then more, one by one
    >>> model.save_pretrained("out/model"); GPT.from_pretrained("out/model")
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from tinyllm import backend
from tinyllm import functional as F
from tinyllm.autograd import no_grad
from tinyllm.creation import arange, tensor
from tinyllm.nn import init
from tinyllm.nn.block import Block, make_norm
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.container import ModuleDict, ModuleList
from tinyllm.nn.decoding import make_decoder
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.embedding import Embedding
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.nn.moe import inactive_parameters, with_moe_losses
from tinyllm.nn.positional import sinusoidal_table
from tinyllm.nn.prefix_lm import check_prefix_len
from tinyllm.nn.pretrained import load_pretrained, save_pretrained
from tinyllm.tensor import Tensor


class GPT(Module):
    """``logits, loss = model(idx, targets=None)``; see the module docstring."""

    IGNORE_INDEX = -100  # targets equal to it add nothing to the loss (torch's and Hugging Face's convention)

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}; "
                            "build one with GPTConfig(...) or GPTConfig.from_dict(d)")
        self.config = config
        parts = dict(wte=Embedding(config.vocab_size, config.d_model))
        if config.pos_encoding == "learned":
            parts["wpe"] = Embedding(config.context_length, config.d_model)
        parts.update(drop=Dropout(config.dropout), h=ModuleList([Block(config, i) for i in range(config.n_layer)]))
        if config.norm_position == "pre":  # post-norm blocks end normalized: no final norm (block.py)
            parts["ln_f"] = make_norm(config)
        self.transformer = ModuleDict(parts)
        if config.pos_encoding == "sinusoidal":  # derived from the config: a buffer that is never saved
            self.register_buffer("pos_table", tensor(sinusoidal_table(config.context_length, config.d_model)),
                                 persistent=False)
        self.lm_head = Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # one Parameter under two names (Press & Wolf 2017)
        self.apply(self._init_weights)
        resid_std = 0.02 / math.sqrt(2 * config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, resid_std)

    @staticmethod
    def _init_weights(module: Module) -> None:
        if isinstance(module, Linear):
            init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, Embedding):
            init.normal_(module.weight, 0.0, 0.02)

    @property
    def device(self) -> str:
        return self.transformer.wte.weight.device

    # ------------------------------------------------------------------ forward
    def _ids(self, idx, name: str, check_length: bool = True):
        """idx as an integer (B, T) array on the model's device, checked (on the host) against vocab_size."""
        data = idx.data if isinstance(idx, Tensor) else idx
        if not backend.is_array(data):
            data = np.asarray(data)
        if data.dtype.kind not in "iu":
            raise TypeError(f"GPT: {name} must hold integer token ids, got dtype {data.dtype}; "
                            f"e.g. np.asarray(ids, dtype=np.int64)")
        if data.ndim != 2:
            raise ValueError(f"GPT: {name} must have shape (B, T), got {tuple(data.shape)}; "
                             f"for a single sequence pass ids[None]")
        T, ctx = data.shape[1], self.config.context_length
        if check_length and T > ctx and self.max_positions is not None:
            raise ValueError(f"GPT: {name} has T={T} tokens but context_length={ctx}; crop it to the last "
                             f"{ctx} tokens ({name}[:, -{ctx}:]) or build a model with a longer context")
        device = backend.device_of(data)
        if device == "cpu":  # subtle: checked on the host only; on a device the check would cost a sync
            V = self.config.vocab_size
            bad = (data < 0) | (data >= V)
            if bad.any():
                b, t = np.unravel_index(int(bad.argmax()), bad.shape)
                raise ValueError(f"GPT: expected token ids in [0, vocab_size={V}), got {int(data[b, t])} "
                                 f"in {name} at position ({b}, {t})")
            if self.device != "cpu":
                data = backend.asarray(data, device=self.device)  # host batch -> the model's device
        elif device != self.device:
            raise RuntimeError(f"GPT: {name} is on {device!r} but the model is on {self.device!r}; "
                               f"move it with .to({self.device!r})")
        return data

    @property
    def max_positions(self) -> int | None:
        """How far positions go: context_length, or None (no end) for a sliding-window model whose positions
        need no table (rope, alibi, none). Such a model reads any length: every query sees the last `window`
        keys at distances it was trained on, and its cache (a RollingKVCache) keeps only those."""
        c = self.config
        return None if c.window is not None and c.pos_encoding in ("rope", "alibi", "none") else c.context_length

    def _positions(self, T: int, offset: int, cache) -> None:
        """Check that positions offset .. offset+T-1 exist (and fit in the cache)."""
        ctx = self.config.context_length
        if offset + T > ctx and self.max_positions is not None:  # first: no longer cache can help here
            raise ValueError(f"GPT: positions {offset}..{offset + T - 1} go past context_length={ctx}; "
                             f"the cache holds {offset} and {T} more came; reset() it and re-read the last "
                             f"{ctx} tokens, or build a model with a longer context")
        if cache is not None:
            if cache.n_layer != self.config.n_layer or cache.keys.shape[2] != self.config.kv_heads \
                    or cache.keys.shape[4] != self.config.head_dim:
                raise ValueError(f"GPT: the cache {cache!r} was not made for this model; use model.make_cache(...)")
            cache.check_room(T)

    def _position_vectors(self, T: int, offset: int):
        """(T, C) added to the token embeddings ("learned", "sinusoidal"), or None."""
        kind = self.config.pos_encoding
        if kind == "learned":
            return self.transformer.wpe(arange(offset, offset + T, device=self.device))  # (T, C)
        if kind == "sinusoidal":
            return self.pos_table[offset:offset + T]  # a constant (T, C)
        return None  # rope and alibi act inside attention; none adds nothing

    def hidden_states(self, idx, cache=None, prefix_len=None):
        """The final-normed residual stream ln_f(x), (B, T, C): everything but the LM head.

        With a KVCache, idx continues what the cache holds; prefix_len: see forward.
        """
        ids = self._ids(idx, "idx", check_length=cache is None)
        B, T = ids.shape
        offset = 0 if cache is None else cache.length
        self._positions(T, offset, cache)
        prefix_len = self._prefix(prefix_len, B, T, offset)
        x = self.transformer.wte(ids)  # (B, T) -> (B, T, C)
        if self.config.pos_encoding == "sinusoidal":
            # Vaswani et al. §3.4: token vectors times √d_model before the fixed sines are added. Without it
            # the sines (RMS 0.71) drown GPT-2-initialized token vectors (std 0.02) and training stalls (lab 2).
            x = x * math.sqrt(self.config.d_model)
        pos = self._position_vectors(T, offset)
        if pos is not None:
            x = x + pos  # (B,T,C) + (T,C)
        x = self.transformer.drop(x)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, cache=cache, layer=layer, prefix_len=prefix_len)
        if cache is not None:
            cache.advance(T)  # every layer has written positions offset .. offset+T-1
        return self.transformer.ln_f(x) if "ln_f" in self.transformer else x

    def forward(self, idx, targets=None, cache=None, prefix_len=None):
        """(logits (B, T, V), loss) for ids (B, T); loss is None without targets.

        ``targets`` (B, T) are the next tokens (idx shifted by one); IGNORE_INDEX (-100) entries are skipped.
        ``cache`` (from make_cache): idx is the continuation of the tokens the cache holds, at
        positions cache.length.. ; their keys and values are appended. No graph is built then
        (a cache is for inference).
        ``prefix_len`` P (an int, or (B,) ints): a prefix LM (tinyllm/nn/prefix_lm.py): positions < P see
        one another, the rest causally, and the loss counts only the tokens after the prefix
        (targets[:, P-1:]). With a cache, the prefix is read while the cache is empty.
        """
        if cache is not None:
            with no_grad():
                return self._forward(idx, targets, cache, prefix_len)
        return self._forward(idx, targets, None, prefix_len)

    def _prefix(self, prefix_len, B: int, T: int, offset: int):
        """prefix_len checked (nn/prefix_lm.py) as a host (B,) array, or None."""
        if prefix_len is None:
            return None
        if not self.config.causal:
            raise ValueError("GPT: prefix_len needs a causal model; this one (causal=False) reads every row "
                             "bidirectionally already")
        if offset:
            raise ValueError(f"GPT: prefix_len with a KV cache that holds {offset} positions: the prefix must be read "
                             "in the first chunk, while the cache is empty (reset() it, or leave prefix_len out)")
        return check_prefix_len(prefix_len, B, T)

    def _forward(self, idx, targets, cache, prefix_len=None):
        logits = self.lm_head(self.hidden_states(idx, cache, prefix_len))  # (B, T, C) -> (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        tgt = targets.data if isinstance(targets, Tensor) else targets
        if not backend.is_array(tgt):
            tgt = np.asarray(tgt)
        if tuple(tgt.shape) != (B, T) or tgt.dtype.kind not in "iu":
            raise ValueError(f"GPT: targets must be integer ids of the same shape as idx {(B, T)}, "
                             f"got {tgt.dtype} array of shape {tuple(tgt.shape)}")
        if prefix_len is not None:  # a prefix LM learns the tokens after the prefix: targets[:, P-1:]
            P = check_prefix_len(prefix_len, B, T)
            before = np.arange(T)[None, :] < (P[:, None] - 1)  # (B, T) host
            tgt = backend.of(tgt).where(backend.asarray(before, device=backend.device_of(tgt)),
                                        tgt.dtype.type(self.IGNORE_INDEX), tgt)
        if backend.device_of(tgt) == "cpu" and self.device != "cpu":
            tgt = backend.asarray(tgt, device=self.device)
        loss = F.cross_entropy(logits.reshape(B * T, V), Tensor(tgt.reshape(B * T)),  # (B,T,V) -> (B·T, V)
                               ignore_index=self.IGNORE_INDEX)
        loss, self.loss_parts = with_moe_losses(self, loss)  # + the experts' auxiliary losses in training
        return logits, loss

    def make_cache(self, batch_size: int = 1, max_len: int | None = None):
        """An empty KVCache for this model: batch_size rows, up to max_len (<= context_length) positions.

        With a sliding window, a RollingKVCache (tinyllm/inference/rolling_cache.py) of 2·window slots
        (fewer when max_len, the positions it will ever hold, is smaller): memory O(window).
        """
        from tinyllm.inference.kv_cache import KVCache
        from tinyllm.inference.rolling_cache import RollingKVCache

        ctx, c = self.config.context_length, self.config
        limit = self.max_positions
        max_len = ctx if max_len is None and c.window is None else max_len
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer))
                                    or not 1 <= max_len <= (limit or max_len)):
            raise ValueError(f"make_cache: max_len must be an integer in [1, context_length={ctx}], got {max_len!r}")
        if c.window is not None:
            capacity = 2 * c.window if max_len is None else min(2 * c.window, max(c.window, int(max_len)))
            return RollingKVCache(c.n_layer, batch_size, c.kv_heads, c.window, c.head_dim, capacity=capacity,
                                  dtype=self.transformer.wte.weight.dtype, device=self.device)
        return KVCache(c.n_layer, batch_size, c.kv_heads, int(max_len), c.head_dim,
                       dtype=self.transformer.wte.weight.dtype, device=self.device)

    def make_decoder(self, batch_size: int = 1, max_len: int | None = None):
        """A Decoder (tinyllm/inference/decode.py) over a fresh make_cache(batch_size, max_len): prefill(ids),
        then step(ids) -> logits, one token per row on raw arrays; None when this model holds anything the
        Decoder does not repeat (a subclass, other module types, attention recording: tinyllm/nn/decoding.py).
        """
        return make_decoder(self, batch_size, max_len) if type(self) is GPT else None

    # ------------------------------------------------------------------ generation
    @no_grad()
    def next_token_logits(self, idx, cache=None, prefix_len=None) -> np.ndarray:
        """Host float32 logits (B, V) of the token after each row of idx (B, T).

        Only the last position goes through the LM head. With a cache, idx is what
        comes after the cached tokens; prefix_len: see forward.
        """
        h = self.hidden_states(idx, cache, prefix_len)
        return backend.to_numpy(self.lm_head(h[:, -1]).data)  # (B, C) -> (B, V), to the host

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, min_p: float | None = None, repetition_penalty: float = 1.0,
                 presence_penalty: float = 0.0, frequency_penalty: float = 0.0, seed=None,
                 use_cache: bool = True, fast_decode: bool = True, prefix_len=None) -> np.ndarray:
        """Extend each row of idx (B, T) by max_new_tokens sampled tokens -> int64 (B, T + max_new_tokens).

        prefix_len: for a prefix LM, the first prefix_len tokens of idx are its bidirectional prefix.

        Each step: next-token logits (in eval mode, no graph; with a KV cache unless
        use_cache=False; the one-token steps on raw arrays, make_decoder, unless fast_decode=False
        or the model is not a plain GPT) -> penalties -> filters (temperature, top-k, top-p, min-p; Hugging
        Face's order) -> sample. temperature=0 is greedy (argmax). ``seed`` (an int, or a
        np.random.Generator) makes the sampling repeatable; None draws a seed from tinyllm's
        generator, so ``tinyllm.manual_seed`` repeats it too. The train/eval mode is restored
        after. The loop is tinyllm/inference/generate.py; the knobs, tinyllm/inference/sampling.py.
        """
        from tinyllm.inference.generate import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        min_p=min_p, repetition_penalty=repetition_penalty, presence_penalty=presence_penalty,
                        frequency_penalty=frequency_penalty, seed=seed, use_cache=use_cache,
                        fast_decode=fast_decode, prefix_len=prefix_len)

    # ------------------------------------------------------------------ sizes
    def num_parameters(self, non_embedding: bool = False, active: bool = False) -> int:
        """The number of learned numbers; a tied weight counts once.

        active=True counts, in each MoE layer, only the expert_top_k experts a token runs through.

        non_embedding=True leaves out the lookup tables that do no arithmetic:
        wpe, and wte unless it is also the LM head (tied), as nanoGPT counts.
        """
        n = sum(p.numel() for p in self.parameters()) - (inactive_parameters(self) if active else 0)
        if non_embedding:
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.transformer.wte.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs (forward + backward) per token at sequence length seq_len (default context_length):

            6·N + 12·n_layer·d_model·T        (Kaplan et al. 2020 §2.1; PaLM, Chowdhery et al. 2022,
                                               App. B; nanoGPT's estimate_mfu)

        6·N: each weight of a matrix product does a multiply-add (2 FLOPs) per
        token forward and two backward (input and weight gradients);
        N = num_parameters(non_embedding=True, active=True) (MoE: top_k experts). 12·L·C·T: Q Kᵀ and P V cost
        2·T·C FLOPs each per token and layer forward (T keys, the heads together
        C wide, whatever n_kv_head is), times 3 with backward; counted over all T
        keys, not halved for the causal mask, as the references do.
        Example: V=10, T=4, L=1, C=2, d_ff=8, biases, tied: N = 98 -> 6·98 + 12·1·2·4 = 684.
        """
        T = self.config.context_length if seq_len is None else int(seq_len)
        c = self.config
        return 6 * self.num_parameters(non_embedding=True, active=True) + 12 * c.n_layer * c.d_model * T

    # ------------------------------------------------------------------ files (tinyllm/nn/pretrained.py)
    def save_pretrained(self, directory) -> pathlib.Path:
        """Write directory/model.safetensors (GPT-2 names, a tied lm_head left out) and directory/config.json."""
        return save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory, device: str | None = None) -> GPT:
        """The model saved by ``save_pretrained``, on `device` (default: the default device), in eval mode."""
        return load_pretrained(cls, directory, device)
