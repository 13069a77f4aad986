"""GPT: a decoder-only transformer language model (GPT-2, Radford et al. 2019; nanoGPT).

Given token ids (B, T) it predicts, at every position, a distribution over the
next token:

    x      = wte[idx] + wpe[0..T-1]                        (B, T, C) token + position vectors
    x      = Block_L(... Block_1(x))                       pre-norm attention + MLP, residuals
    logits = ln_f(x) W_headᵀ                               (B, T, V), W_head = wte when tied
    loss   = mean over (b, t) of -log softmax(logits[b, t])[targets[b, t]]

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
    >>> model.generate(x[:1, :8], 100, temperature=0.8, top_k=10, seed=0).shape
    (1, 108)
    >>> model.save_pretrained("out/model"); GPT.from_pretrained("out/model")
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from tinyllm import backend
from tinyllm import functional as F
from tinyllm.creation import arange
from tinyllm.nn import init
from tinyllm.nn.block import Block, make_norm
from tinyllm.nn.config import GPTConfig
from tinyllm.nn.container import ModuleDict, ModuleList
from tinyllm.nn.dropout import Dropout
from tinyllm.nn.embedding import Embedding
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.serialization import load, save, write_atomic
from tinyllm.tensor import Tensor, no_grad

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


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
        parts.update(drop=Dropout(config.dropout), h=ModuleList([Block(config) for _ in range(config.n_layer)]),
                     ln_f=make_norm(config))
        self.transformer = ModuleDict(parts)
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
    def _ids(self, idx, name: str):
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
        if T > ctx:
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

    def hidden_states(self, idx):
        """The final-normed residual stream ln_f(x), (B, T, C): everything but the LM head."""
        ids = self._ids(idx, "idx")
        B, T = ids.shape
        wte = self.transformer.wte
        x = wte(ids)  # (B, T) -> (B, T, C)
        if self.config.pos_encoding == "learned":
            x = x + self.transformer.wpe(arange(T, device=self.device))  # (B,T,C) + (T,C)
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def forward(self, idx, targets=None):
        """(logits (B, T, V), loss) for ids (B, T); loss is None without targets.

        ``targets`` (B, T) are the next tokens (idx shifted by one); IGNORE_INDEX (-100) entries are skipped.
        """
        logits = self.lm_head(self.hidden_states(idx))  # (B, T, C) -> (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        tgt = targets.data if isinstance(targets, Tensor) else targets
        if not backend.is_array(tgt):
            tgt = np.asarray(tgt)
        if tuple(tgt.shape) != (B, T) or tgt.dtype.kind not in "iu":
            raise ValueError(f"GPT: targets must be integer ids of the same shape as idx {(B, T)}, "
                             f"got {tgt.dtype} array of shape {tuple(tgt.shape)}")
        if backend.device_of(tgt) == "cpu" and self.device != "cpu":
            tgt = backend.asarray(tgt, device=self.device)
        loss = F.cross_entropy(logits.reshape(B * T, V), Tensor(tgt.reshape(B * T)),  # (B,T,V) -> (B·T, V)
                               ignore_index=self.IGNORE_INDEX)
        return logits, loss

    # ------------------------------------------------------------------ generation
    @no_grad()
    def next_token_logits(self, idx) -> np.ndarray:
        """Host float32 logits (B, V) of the token after each row of idx (B, T <= context_length).

        Only the last position goes through the LM head. (The KV-cache chapter
        makes this incremental; generate only ever calls this.)
        """
        h = self.hidden_states(idx)
        return backend.to_numpy(self.lm_head(h[:, -1]).data)  # (B, C) -> (B, V), to the host

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed=None) -> np.ndarray:
        """Extend each row of idx (B, T) by max_new_tokens sampled tokens -> int64 (B, T + max_new_tokens).

        Each step: next-token logits of the last context_length tokens (in eval
        mode, no graph) -> filter (temperature, top-k) -> sample. temperature=0
        is greedy (argmax). ``seed`` (an int, or a np.random.Generator) makes the
        sampling repeatable; None draws a seed from tinyllm's generator, so
        ``tinyllm.manual_seed`` repeats it too. The model's train/eval mode is restored after.
        """
        raw = idx.data if isinstance(idx, Tensor) else idx
        ids = backend.to_numpy(raw) if backend.is_array(raw) else np.asarray(raw)  # sampling runs on the host
        if ids.dtype.kind not in "iu" or ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"generate: idx must be integer ids of shape (B, T) with T >= 1, got {ids.dtype} "
                             f"array of shape {ids.shape}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
                or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        check_sampling_args(temperature, top_k)
        rng = make_rng(seed)
        ids = ids.astype(np.int64)
        was_training = self.training
        self.eval()
        try:
            for _ in range(int(max_new_tokens)):
                logits = self.next_token_logits(ids[:, -self.config.context_length:])  # (B, V)
                nxt = sample(filter_logits(logits, temperature, top_k), rng, greedy=temperature == 0)
                ids = np.concatenate([ids, nxt[:, None]], axis=1)  # (B, T) -> (B, T+1)
        finally:
            self.train(was_training)
        return ids

    # ------------------------------------------------------------------ sizes
    def num_parameters(self, non_embedding: bool = False) -> int:
        """The number of learned numbers; a tied weight counts once.

        non_embedding=True leaves out the lookup tables that do no arithmetic:
        wpe, and wte unless it is also the LM head (tied), as nanoGPT counts.
        """
        n = sum(p.numel() for p in self.parameters())
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
        N = num_parameters(non_embedding=True). 12·L·C·T: Q Kᵀ and P V cost
        2·T·C FLOPs each per token and layer forward (T keys, the heads together
        C wide, whatever n_kv_head is), times 3 with backward; counted over all T
        keys, not halved for the causal mask, as the references do.
        Example: V=10, T=4, L=1, C=2, d_ff=8, biases, tied: N = 98 -> 6·98 + 12·1·2·4 = 684.
        """
        T = self.config.context_length if seq_len is None else int(seq_len)
        c = self.config
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * c.d_model * T

    # ------------------------------------------------------------------ files
    def save_pretrained(self, directory) -> pathlib.Path:
        """Write directory/model.safetensors (flat state dict, GPT-2 names) and directory/config.json.

        A tied lm_head.weight is not stored (it is transformer.wte.weight), as in
        Hugging Face's GPT-2 files. Both files are written atomically.
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        if self.config.tie_embeddings:
            del state["lm_head.weight"]
        save(dict(state), directory / WEIGHTS_NAME)
        write_atomic(directory / CONFIG_NAME,
                      (json.dumps(self.config.to_dict(), indent=2) + "\n").encode())
        return directory

    @classmethod
    def from_pretrained(cls, directory, device: str | None = None) -> GPT:
        """The model saved by ``save_pretrained``, on `device` (default: the default device), in eval mode."""
        directory = pathlib.Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"GPT.from_pretrained: no {name} in {directory} (a model folder holds "
                                        f"{CONFIG_NAME} and {WEIGHTS_NAME}, as model.save_pretrained writes)")
        try:
            config = GPTConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
        except (ValueError, TypeError) as e:
            raise ValueError(f"GPT.from_pretrained: {directory / CONFIG_NAME} is not a valid GPT config: {e}") from e
        state = load(directory / WEIGHTS_NAME, device=device)
        with backend.use_device(device or backend.get_device()):
            model = cls(config)
        if config.tie_embeddings and "transformer.wte.weight" in state:
            wte, head = state["transformer.wte.weight"], state.get("lm_head.weight")
            if head is not None and (head.shape != wte.shape
                                     or not bool(backend.to_numpy((head.data == wte.data).all()))):
                raise ValueError(f"GPT.from_pretrained: {directory} has tie_embeddings=True but its lm_head.weight "
                                 "differs from transformer.wte.weight; set tie_embeddings to false in config.json")
            state["lm_head.weight"] = wte
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"GPT.from_pretrained: {WEIGHTS_NAME} does not match {CONFIG_NAME} in {directory}:\n{e}"
                             ) from e
        return model.eval()


# ---------------------------------------------------------------------- sampling, a step at a time


def check_sampling_args(temperature, top_k) -> None:
    if not isinstance(temperature, (int, float, np.floating)) or not 0 <= temperature < math.inf:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")


def make_rng(seed) -> np.random.Generator:
    """A NumPy generator: from an int seed, as given, or (None) seeded from tinyllm's cpu generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        seed = int(backend.randint(0, 2**63 - 1, (), device="cpu"))
    return np.random.default_rng(seed)


def filter_logits(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """logits / temperature, with all but the top_k largest per row set to -inf (ties at the k-th kept).

    filter_logits([[1., 3., 2.]], temperature=2.0, top_k=2) -> [[-inf, 1.5, 1.0]]
    """
    out = np.array(logits, dtype=np.float64)  # a copy, in float64 for the softmax that follows
    if temperature > 0:
        out /= temperature
    if top_k is not None and top_k < out.shape[-1]:
        kth = np.partition(out, -top_k, axis=-1)[..., -top_k:].min(axis=-1, keepdims=True)
        out[out < kth] = -np.inf
    return out


def sample(logits: np.ndarray, rng: np.random.Generator, greedy: bool = False) -> np.ndarray:
    """One token per row of logits (B, V) -> int64 (B,): argmax, or a draw from softmax(logits).

    The draw inverts the cumulative distribution with one uniform u per row:
    the first token whose cumulative probability exceeds u (tokens at -inf have
    no width, so they are never drawn). With p = [0.2, 0.5, 0.3] and u = 0.6 -> 1.
    """
    if greedy:
        return logits.argmax(axis=-1).astype(np.int64)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (B, V), unnormalized
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(logits.shape[0])[:, None] * cdf[:, -1:]  # (B, 1), uniform in [0, total)
    return np.minimum((cdf <= u).sum(axis=-1), logits.shape[-1] - 1).astype(np.int64)
