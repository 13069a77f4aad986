"""A GPTConfig as a Hugging Face ``config.json``, and back: which standard architecture a config is.

transformers loads a folder with no custom code only if its config.json names an
architecture it ships. Two of them hold the models of this book:

    GPT2LMHeadModel  (model_type "gpt2")   learned positions, LayerNorm, a plain MLP (gelu, gelu_tanh =
                     Radford et al. 2019    "gelu_new", relu, silu), multi-head attention, biases
    LlamaForCausalLM (model_type "llama")  RoPE ("half" layout, as tinyllm's), RMSNorm, a gated MLP (swiglu:
                     Touvron et al. 2023    hidden_act "silu", geglu: "gelu"), grouped-query attention,
                                            biases optional (attention_bias, mlp_bias)

The fields map one to one:

    GPTConfig        GPT-2                             Llama
    vocab_size       vocab_size                        vocab_size
    context_length   n_positions                       max_position_embeddings
    n_layer, n_head  n_layer, n_head                   num_hidden_layers, num_attention_heads
    d_model, d_ff    n_embd, n_inner                   hidden_size, intermediate_size
    n_kv_head        (= n_head only)                   num_key_value_heads
    norm_eps         layer_norm_epsilon                rms_norm_eps
    rope_theta       -                                 rope_theta (and rope_parameters, transformers 5)
    tie_embeddings   tie_word_embeddings               tie_word_embeddings
    bias             (always; False is written as 0s)  attention_bias, mlp_bias
    dropout          resid_, embd_, attn_pdrop         attention_dropout (Llama has no other dropout)

Any other field must hold its default, or the config has no standard counterpart and
to_hf_config raises an error naming the field (ALiBi or sinusoidal positions, post-norm,
a bidirectional model, mixture-of-experts blocks, a sliding window, ...). ``attention`` picks
a kernel, not a function, so any value exports.

Example:
    >>> to_hf_config(GPTConfig(vocab_size=65, context_length=64, n_layer=2, n_head=4, d_model=32))["architectures"]
    ['GPT2LMHeadModel']
    >>> to_hf_config(GPTConfig(..., pos_encoding="alibi"))
    ValueError: GPTConfig.pos_encoding='alibi' has no standard Hugging Face architecture ...
    >>> from_hf_config(to_hf_config(cfg)) == dataclasses.replace(cfg, attention="full")
"""

from __future__ import annotations

import dataclasses

from tinyllm.nn.config import GPTConfig

GPT2, LLAMA = "gpt2", "llama"
ARCHITECTURE_CLASS = {GPT2: "GPT2LMHeadModel", LLAMA: "LlamaForCausalLM"}

# tinyllm activation -> the name transformers' ACT2FN gives it (and back, with the aliases it accepts)
GPT2_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}
GPT2_ACTIVATIONS_IN = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                       "gelu_fast": "gelu_tanh", "relu": "relu", "silu": "silu", "swish": "silu"}
LLAMA_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu"}
LLAMA_ACTIVATIONS_IN = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu"}

# the fields each architecture expresses (every other one must hold its default); "attention" is a kernel choice
_EXPRESSED = {
    GPT2: {"vocab_size", "context_length", "n_layer", "n_head", "d_model", "d_ff", "dropout", "bias",
           "tie_embeddings", "pos_encoding", "norm", "activation", "n_kv_head", "attention", "norm_eps"},
    LLAMA: {"vocab_size", "context_length", "n_layer", "n_head", "d_model", "d_ff", "dropout", "bias",
            "tie_embeddings", "pos_encoding", "norm", "activation", "n_kv_head", "attention", "norm_eps",
            "rope_theta"},
}
# fields that change nothing unless another one turns them on
_MOE_FIELDS = ("expert_top_k", "expert_capacity_factor", "moe_aux_loss_coef", "moe_z_loss_coef", "moe_every")


def _defaults() -> dict:
    return {f.name: f.default for f in dataclasses.fields(GPTConfig) if f.default is not dataclasses.MISSING}


def hf_architecture(config: GPTConfig) -> str:
    """GPT2 or LLAMA: the standard architecture that computes what a GPT of `config` computes.

    Raises ValueError naming the first field no standard architecture expresses.
    """
    def refuse(field: str, why: str):
        value = getattr(config, field)
        return ValueError(f"GPTConfig.{field}={value!r} has no standard Hugging Face architecture: {why}. "
                          "Exportable configs are GPT-2's (pos_encoding='learned', norm='layernorm', a plain MLP) "
                          "and Llama's (pos_encoding='rope', norm='rmsnorm', activation='swiglu' or 'geglu')")

    arch = {"learned": GPT2, "rope": LLAMA}.get(config.pos_encoding)
    if arch is None:
        raise refuse("pos_encoding", "GPT-2 learns its positions, Llama rotates them (rope)")
    if arch == GPT2:
        if config.norm != "layernorm":
            raise refuse("norm", "GPT-2 (learned positions) normalizes with LayerNorm")
        if config.activation not in GPT2_ACTIVATIONS:
            raise refuse("activation", f"GPT-2's MLP is not gated; it takes {sorted(GPT2_ACTIVATIONS)}")
        if config.kv_heads != config.n_head:
            raise refuse("n_kv_head", "GPT-2 has one key/value head per query head; grouped-query attention "
                                      "needs a Llama config (rope, rmsnorm, swiglu)")
    else:
        if config.norm != "rmsnorm":
            raise refuse("norm", "Llama (rope positions) normalizes with RMSNorm")
        if config.activation not in LLAMA_ACTIVATIONS:
            raise refuse("activation", f"Llama's MLP is gated; it takes {sorted(LLAMA_ACTIVATIONS)}")
    ignored = set(_MOE_FIELDS) if config.n_expert == 0 else set()
    if config.pos_encoding != "rope":
        ignored.add("rope_theta")
    for field, default in _defaults().items():
        if field not in _EXPRESSED[arch] and field not in ignored and getattr(config, field) != default:
            raise refuse(field, f"{ARCHITECTURE_CLASS[arch]} has no such setting (the default is {default!r})")
    return arch


def to_hf_config(config: GPTConfig, bos_token_id: int | None = None, eos_token_id: int | None = None) -> dict:
    """The config.json of the Hugging Face model that computes the same function as a GPT of `config`."""
    arch = hf_architecture(config)
    c = config
    common = dict(architectures=[ARCHITECTURE_CLASS[arch]], model_type=arch, vocab_size=c.vocab_size,
                  tie_word_embeddings=c.tie_embeddings, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                  torch_dtype="float32", use_cache=True)
    if arch == GPT2:
        return dict(common, n_positions=c.context_length, n_embd=c.d_model, n_layer=c.n_layer, n_head=c.n_head,
                    n_inner=c.d_ff, activation_function=GPT2_ACTIVATIONS[c.activation], layer_norm_epsilon=c.norm_eps,
                    resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout, scale_attn_weights=True,
                    scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False, initializer_range=0.02)
    theta = float(c.rope_theta)
    # subtle: transformers 4 reads rope_theta, transformers 5 rope_parameters; both are written
    return dict(common, max_position_embeddings=c.context_length, hidden_size=c.d_model, num_hidden_layers=c.n_layer,
                num_attention_heads=c.n_head, num_key_value_heads=c.kv_heads, head_dim=c.head_dim,
                intermediate_size=c.d_ff, hidden_act=LLAMA_ACTIVATIONS[c.activation], rms_norm_eps=c.norm_eps,
                rope_theta=theta, rope_scaling=None, rope_parameters={"rope_type": "default", "rope_theta": theta},
                attention_bias=c.bias, mlp_bias=c.bias, attention_dropout=c.dropout, pretraining_tp=1,
                initializer_range=0.02)


def _get(d: dict, key: str, kinds, source: str, default=dataclasses.MISSING):
    if key not in d or d[key] is None:
        if default is dataclasses.MISSING:
            raise ValueError(f"{source}: no {key!r}; a {d.get('model_type')} config.json holds it")
        return default
    value = d[key]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise ValueError(f"{source}: {key!r} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def hf_model_type(d: dict, source: str = "config.json") -> str:
    """GPT2 or LLAMA from a config.json's model_type (or architectures); ValueError for any other."""
    if not isinstance(d, dict):
        raise ValueError(f"{source} is not a JSON object")
    kind = d.get("model_type")
    archs = d.get("architectures") or []
    if kind in (GPT2, LLAMA):
        return kind
    for arch, cls in ARCHITECTURE_CLASS.items():
        if cls in archs:
            return arch
    raise ValueError(f"{source}: model_type {kind!r} (architectures {archs}) is not one tinyllm reads; it reads "
                     f"{sorted(ARCHITECTURE_CLASS.values())} checkpoints")


def from_hf_config(d: dict, source: str = "config.json") -> GPTConfig:
    """The GPTConfig of a GPT-2 or Llama config.json (what to_hf_config writes, or a real checkpoint's).

    Settings that tinyllm's GPT does not compute (RoPE scaling, a head_dim other than
    hidden_size / heads, cross-attention, per-layer attention scaling) raise ValueError naming them.
    """
    arch = hf_model_type(d, source)
    tie = _get(d, "tie_word_embeddings", (bool,), source, default=arch == GPT2)
    if arch == GPT2:
        for key, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                        ("add_cross_attention", False)):
            if d.get(key, ok) != ok:
                raise ValueError(f"{source}: {key}={d[key]!r} is not computed by tinyllm's GPT (it needs {ok})")
        act = _get(d, "activation_function", (str,), source, default="gelu_new")
        if act not in GPT2_ACTIVATIONS_IN:
            raise ValueError(f"{source}: activation_function {act!r} is not one tinyllm has; it reads "
                             f"{sorted(GPT2_ACTIVATIONS_IN)}")
        C = _get(d, "n_embd", (int,), source)
        p = _get(d, "resid_pdrop", (int, float), source, default=0.0)
        return GPTConfig(vocab_size=_get(d, "vocab_size", (int,), source),
                         context_length=_get(d, "n_positions", (int,), source),
                         n_layer=_get(d, "n_layer", (int,), source),
                         n_head=_get(d, "n_head", (int,), source), d_model=C,
                         d_ff=_get(d, "n_inner", (int,), source, default=4 * C), dropout=float(p), bias=True,
                         tie_embeddings=tie, pos_encoding="learned", norm="layernorm",
                         activation=GPT2_ACTIVATIONS_IN[act],
                         norm_eps=float(_get(d, "layer_norm_epsilon", (int, float), source, default=1e-5)))
    scaling = d.get("rope_scaling")
    params = d.get("rope_parameters") if isinstance(d.get("rope_parameters"), dict) else {}
    if scaling or params.get("rope_type", "default") != "default":
        raise ValueError(f"{source}: rope_scaling {scaling or params!r} stretches RoPE's angles (long-context "
                         "scaling); tinyllm's RoPE has no scaling, so this checkpoint would compute other numbers")
    act = _get(d, "hidden_act", (str,), source, default="silu")
    if act not in LLAMA_ACTIVATIONS_IN:
        raise ValueError(f"{source}: hidden_act {act!r} is not one tinyllm's gated MLP has; it reads "
                         f"{sorted(LLAMA_ACTIVATIONS_IN)}")
    C, nh = _get(d, "hidden_size", (int,), source), _get(d, "num_attention_heads", (int,), source)
    head_dim = _get(d, "head_dim", (int,), source, default=C // nh)
    if head_dim * nh != C:
        raise ValueError(f"{source}: head_dim={head_dim} x num_attention_heads={nh} != hidden_size={C}; tinyllm's "
                         "attention has head_dim = d_model // n_head")
    theta = _get(d, "rope_theta", (int, float), source, default=params.get("rope_theta", 10000.0))
    bias = bool(d.get("attention_bias", False) or d.get("mlp_bias", False))  # a missing bias loads as zeros
    nkv = _get(d, "num_key_value_heads", (int,), source, default=nh)
    return GPTConfig(vocab_size=_get(d, "vocab_size", (int,), source),
                     context_length=_get(d, "max_position_embeddings", (int,), source),
                     n_layer=_get(d, "num_hidden_layers", (int,), source), n_head=nh, d_model=C,
                     d_ff=_get(d, "intermediate_size", (int,), source),
                     dropout=float(_get(d, "attention_dropout", (int, float), source, default=0.0)), bias=bias,
                     tie_embeddings=tie, pos_encoding="rope", norm="rmsnorm", activation=LLAMA_ACTIVATIONS_IN[act],
                     n_kv_head=None if nkv == nh else nkv,
                     norm_eps=float(_get(d, "rms_norm_eps", (int, float), source, default=1e-6)),
                     rope_theta=float(theta))
