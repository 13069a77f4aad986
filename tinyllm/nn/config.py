"""GPTConfig: every number and choice that defines a GPT, in one frozen dataclass.

A model is its code plus this config: the same config gives the same
architecture (and, with the same seed, the same initial weights), and it is
what ``save_pretrained`` writes next to the weights as ``config.json``.
Frozen, so a model's shape cannot drift after it is built; derive a variant
with ``dataclasses.replace(config, n_layer=8)``.

The defaults are GPT-2's choices (Radford et al. 2019; nanoGPT): learned
absolute positions, LayerNorm, GELU, d_ff = 4·d_model, biases, tied input and
output embeddings. Every switch the chapters turn is a field here, so one
config format describes every model of the book:

    pos_encoding  "learned" | "sinusoidal" | "rope" | "alibi" | "none"      (§2, tinyllm/nn/positional/)
    rope_theta    RoPE's base: plane i turns by θ_i = rope_theta^(-2i/hs) per position (10000 in the paper)
    norm          "layernorm" | "rmsnorm"
    activation    "gelu" | "gelu_tanh" | "relu" | "silu"   (gelu_tanh is GPT-2's own "gelu_new")
                  | "swiglu" | "geglu": gated MLPs, three projections (Shazeer 2020), d_ff by default
                  2/3 · 4·d_model rounded up to a multiple of 64 (LLaMA's rule), so the MLP keeps ~8·C² weights
    norm_position "pre" (GPT-2: x + f(norm(x))) | "post" (Vaswani et al. 2017: norm(x + f(x)), no final norm)
    causal        True: a decoder; False: every token sees every token (BERT's masked LM, §11)
    n_kv_head     None (= n_head, multi-head) | a divisor of n_head (grouped-query; 1 = multi-query)
    attention     "full" | "memory_efficient" | "flash": the kernel (§7, tinyllm/functional/); the same math
    window        None | W: a sliding window, query i sees keys i - W < j <= i (Mistral); the KV cache then
                  keeps only the last W positions (tinyllm/inference/rolling_cache.py)
    n_expert      0 (a dense MLP) | E: a mixture of E experts in every moe_every-th block (§8, tinyllm/nn/moe.py),
                  expert_top_k of them per token; expert_capacity_factor (None: nothing dropped), the
                  weights of the balance and z losses moe_aux_loss_coef (0.01), moe_z_loss_coef (0.001)

Example:
    >>> cfg = GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128)
    >>> cfg.d_ff, cfg.head_dim, cfg.kv_heads
    (512, 32, 4)
    >>> GPTConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=3, d_model=128)
    ValueError: d_model=128 must be divisible by n_head=3 (each head gets d_model // n_head dims) ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

POS_ENCODINGS = ("learned", "sinusoidal", "rope", "alibi", "none")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu", "swiglu", "geglu")
GATED_ACTIVATIONS = ("swiglu", "geglu")  # an MLP with a gate projection: act(x W_gate) ⊙ x W_up
NORM_POSITIONS = ("pre", "post")
ATTENTIONS = ("full", "memory_efficient", "flash")

# names of variants that a later chapter adds: accepted as words, refused with a pointer to that chapter
_PLANNED: dict = {}


def _choice(field: str, value, valid: tuple) -> None:
    if value in valid:
        return
    planned = _PLANNED.get(field, {})
    if value in planned:
        raise NotImplementedError(f"GPTConfig: {field}={value!r} is not implemented yet (it comes with "
                                  f"{planned[value]}); implemented now: {', '.join(map(repr, valid))}")
    known = list(valid) + list(planned)
    raise ValueError(f"GPTConfig: unknown {field} {value!r}; expected one of {', '.join(map(repr, known))}")


def default_d_ff(d_model: int, activation: str = "gelu") -> int:
    """The MLP width when d_ff is not given: 4·d_model, or for a gated MLP 2/3 of it rounded up to a multiple of 64.

    A gated MLP has three d_model x d_ff matrices instead of two; 2/3 · 4·d_model keeps its weights at
    ~8·d_model² (LLaMA, Touvron et al. 2023: hidden = 2/3 · 4d, rounded up to a multiple of 256 there).
    default_d_ff(128, "swiglu") -> 384 (341.3 rounded up); default_d_ff(128) -> 512.
    """
    if activation not in GATED_ACTIVATIONS:
        return 4 * d_model
    return -(-int(2 * 4 * d_model / 3) // 64) * 64


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class GPTConfig:
    """The architecture of a GPT (see the module docstring for the choices)."""

    vocab_size: int
    context_length: int
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int | None = None          # None -> 4 · d_model
    dropout: float = 0.0
    bias: bool = True                # biases in every Linear and LayerNorm (GPT-2: True)
    tie_embeddings: bool = True      # lm_head.weight is transformer.wte.weight
    pos_encoding: str = "learned"
    norm: str = "layernorm"
    activation: str = "gelu"
    n_kv_head: int | None = None     # None -> n_head
    attention: str = "full"
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0      # used by pos_encoding="rope" only
    n_expert: int = 0                # 0: a dense MLP; E >= 1: a mixture of E experts (nn/moe.py)
    expert_top_k: int = 1            # experts per token
    expert_capacity_factor: float | None = None  # training only: Switch's capacity; None drops nothing
    moe_aux_loss_coef: float = 0.01  # Switch's load-balancing loss, per MoE layer
    moe_z_loss_coef: float = 0.001   # ST-MoE's router z-loss, per MoE layer
    moe_every: int = 1               # blocks moe_every-1, 2·moe_every-1, ... are MoE (1: all)
    norm_position: str = "pre"       # "pre" (GPT-2) | "post" (the original Transformer)
    causal: bool = True              # False: bidirectional attention (masked LM)
    window: int | None = None        # sliding-window attention: query i sees keys i - window < j <= i

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            _positive_int(name, getattr(self, name))
        if self.d_ff is None:  # subtle: frozen, so set it like this
            object.__setattr__(self, "d_ff", default_d_ff(self.d_model, self.activation))
        _positive_int("d_ff", self.d_ff)
        if self.d_model % self.n_head:
            raise ValueError(f"GPTConfig: d_model={self.d_model} must be divisible by n_head={self.n_head} "
                             f"(each head gets d_model // n_head dims); e.g. n_head in "
                             f"{[h for h in range(1, min(self.d_model, 64) + 1) if self.d_model % h == 0]}")
        if self.n_kv_head is not None:
            _positive_int("n_kv_head", self.n_kv_head)
            if self.n_head % self.n_kv_head:
                raise ValueError(f"GPTConfig: n_head={self.n_head} must be a multiple of n_kv_head={self.n_kv_head} "
                                 "(each key/value head serves a group of n_head // n_kv_head query heads)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be a probability in [0, 1), got {self.dropout!r}")
        for name in ("bias", "tie_embeddings", "causal"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig: {name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.norm_eps, bool) or not isinstance(self.norm_eps, (int, float)) or not self.norm_eps > 0:
            raise ValueError(f"GPTConfig: norm_eps must be a positive number, got {self.norm_eps!r}")
        if isinstance(self.rope_theta, bool) or not isinstance(self.rope_theta, (int, float)) \
                or not 1.0 < self.rope_theta < float("inf"):
            raise ValueError(f"GPTConfig: rope_theta must be a finite number > 1 (RoPE's base, e.g. 10000), "
                             f"got {self.rope_theta!r}")
        if self.pos_encoding == "rope" and self.head_dim % 2:
            raise ValueError(f"GPTConfig: pos_encoding='rope' turns pairs of a head's dims, so head_dim = "
                             f"d_model // n_head must be even; got {self.head_dim}")
        if self.pos_encoding == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"GPTConfig: pos_encoding='sinusoidal' pairs sin and cos dims, so d_model must be even; "
                             f"got {self.d_model}")
        self._check_moe()
        _choice("pos_encoding", self.pos_encoding, POS_ENCODINGS)
        _choice("norm", self.norm, NORMS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("norm_position", self.norm_position, NORM_POSITIONS)
        _choice("attention", self.attention, ATTENTIONS)
        if self.window is not None:
            _positive_int("window", self.window)
            if not self.causal:
                raise ValueError(f"GPTConfig: window={self.window} is a causal sliding window (query i sees keys "
                                 f"i - window < j <= i); it needs causal=True")

    # ------------------------------------------------------------------ derived sizes
    @property
    def head_dim(self) -> int:
        """hs = d_model // n_head, the width of one attention head."""
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        """nkv: the number of key/value heads (n_kv_head, or n_head when None)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    def is_moe_layer(self, layer: int) -> bool:
        """Whether block `layer` (0-based) holds a MoE, not the MLP: n_expert > 0 and (layer+1) % moe_every == 0."""
        return self.n_expert > 0 and (layer + 1) % self.moe_every == 0

    def _check_moe(self) -> None:
        """The mixture-of-experts fields (§8)."""
        if isinstance(self.n_expert, bool) or not isinstance(self.n_expert, int) or self.n_expert < 0:
            raise ValueError(f"GPTConfig: n_expert must be 0 (a dense MLP) or a number of experts >= 1, "
                             f"got {self.n_expert!r}")
        _positive_int("expert_top_k", self.expert_top_k)
        _positive_int("moe_every", self.moe_every)
        if self.n_expert and self.expert_top_k > self.n_expert:
            raise ValueError(f"GPTConfig: expert_top_k={self.expert_top_k} must be <= n_expert={self.n_expert} "
                             "(each token goes to top_k of the experts)")
        if self.n_expert and self.moe_every > self.n_layer:
            raise ValueError(f"GPTConfig: moe_every={self.moe_every} > n_layer={self.n_layer} leaves no block with "
                             "experts; choose moe_every <= n_layer (1: every block)")
        cf = self.expert_capacity_factor
        if cf is not None and (isinstance(cf, bool) or not isinstance(cf, (int, float)) or not 0 < cf < float("inf")):
            raise ValueError(f"GPTConfig: expert_capacity_factor must be None (nothing dropped) or a number > 0 "
                             f"(Switch used 1.0 to 1.25), got {cf!r}")
        for name in ("moe_aux_loss_coef", "moe_z_loss_coef"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf"):
                raise ValueError(f"GPTConfig: {name} must be a finite number >= 0, got {v!r}")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """Every field as plain JSON values (d_ff resolved to its number)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """The config of ``to_dict()`` (missing optional fields take their defaults)."""
        if not isinstance(d, dict):
            raise TypeError(f"GPTConfig.from_dict expects a dict, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"GPTConfig.from_dict: unknown key(s) {unknown}; the fields are {names}")
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.name not in d]
        if required:
            raise ValueError(f"GPTConfig.from_dict: missing required key(s) {required}")
        return cls(**d)
