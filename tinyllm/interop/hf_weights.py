"""A GPT's weights under Hugging Face's names and layouts, and back; safetensors files as transformers writes them.

tinyllm keeps GPT-2's names (nanoGPT's), with every Linear weight stored (out, in)
as torch.nn.Linear. The two architectures of hf_config.py differ from it in layout only:

    GPT-2 (GPT2LMHeadModel)    the same names; attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj are
                               Conv1D layers storing (in, out): each weight is transposed.
    Llama (LlamaForCausalLM)   other names, and q, k, v as three matrices: tinyllm's fused c_attn
                               (C + 2·nkv·hs, C) is cut into rows [0, C) q_proj, [C, C + nkv·hs) k_proj,
                               the rest v_proj. RoPE's "half" layout is the same on both sides, so no
                               row is permuted (GGUF's interleaved layout would need one, nn/positional/rope.py).

        transformer.wte.weight        model.embed_tokens.weight
        transformer.h.N.ln_1.weight   model.layers.N.input_layernorm.weight
        h.N.attn.c_attn.weight        model.layers.N.self_attn.{q,k,v}_proj.weight   (rows cut)
        h.N.attn.c_proj.weight        model.layers.N.self_attn.o_proj.weight
        h.N.ln_2.weight               model.layers.N.post_attention_layernorm.weight
        h.N.mlp.{c_gate,c_fc,c_proj}  model.layers.N.mlp.{gate,up,down}_proj.weight
        transformer.ln_f.weight       model.norm.weight
        lm_head.weight                lm_head.weight  (left out of the file when tied, as transformers does)

A config without biases exports to GPT-2 with zero biases (GPT-2 always has them), and a
Llama checkpoint with attention biases but no MLP biases imports with zero MLP biases:
the same function either way.

Reading: model.safetensors, or the shards a model.safetensors.index.json names. F32, F16
and BF16 tensors become float32 (bfloat16 is the top half of a float32: shift its bits
left by 16). A folder with only pytorch_model.bin (a pickle: loading one runs code named
in the file) is refused with the command that converts it.

Example (GPT-2 shapes, C = 4): tinyllm h.0.attn.c_attn.weight (12, 4) -> transformer.h.0.attn.c_attn.weight (4, 12);
Llama, C = 4, nh = 2, nkv = 1: c_attn.weight (8, 4) -> q_proj (4, 4), k_proj (2, 4), v_proj (2, 4).
"""

from __future__ import annotations

import pathlib

import numpy as np
import safetensors.numpy

from tinyllm.interop.hf_config import GPT2
from tinyllm.nn.config import GPTConfig
from tinyllm.serialization import MAX_HEADER_BYTES, parse_json, read_regular_file, write_atomic

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")
_LAYOUT_MARK = {"format": "pt"}  # transformers refuses a safetensors file whose metadata lacks a known "format"
_FLOATS = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def _layer_names(arch: str, config: GPTConfig, i: int) -> list[tuple[str, str, bool]]:
    """(tinyllm name, Hugging Face name, transposed) for block i's tensors other than c_attn."""
    t, bias = f"transformer.h.{i}.", config.bias
    if arch == GPT2:
        h = f"transformer.h.{i}."
        rows = [("ln_1.weight", "ln_1.weight", False), ("ln_1.bias", "ln_1.bias", False),
                ("attn.c_proj.weight", "attn.c_proj.weight", True), ("attn.c_proj.bias", "attn.c_proj.bias", False),
                ("ln_2.weight", "ln_2.weight", False), ("ln_2.bias", "ln_2.bias", False),
                ("mlp.c_fc.weight", "mlp.c_fc.weight", True), ("mlp.c_fc.bias", "mlp.c_fc.bias", False),
                ("mlp.c_proj.weight", "mlp.c_proj.weight", True), ("mlp.c_proj.bias", "mlp.c_proj.bias", False)]
        return [(t + a, h + b, tr) for a, b, tr in rows]
    h = f"model.layers.{i}."
    rows = [("ln_1.weight", "input_layernorm.weight"), ("ln_2.weight", "post_attention_layernorm.weight"),
            ("attn.c_proj.weight", "self_attn.o_proj.weight"), ("mlp.c_gate.weight", "mlp.gate_proj.weight"),
            ("mlp.c_fc.weight", "mlp.up_proj.weight"), ("mlp.c_proj.weight", "mlp.down_proj.weight")]
    if bias:
        rows += [("attn.c_proj.bias", "self_attn.o_proj.bias"), ("mlp.c_gate.bias", "mlp.gate_proj.bias"),
                 ("mlp.c_fc.bias", "mlp.up_proj.bias"), ("mlp.c_proj.bias", "mlp.down_proj.bias")]
    return [(t + a, h + b, False) for a, b in rows]


def _global_names(arch: str, config: GPTConfig) -> list[tuple[str, str]]:
    if arch == GPT2:  # the same names
        names = [(n, n) for n in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
                                  "transformer.ln_f.bias")]
    else:
        names = [("transformer.wte.weight", "model.embed_tokens.weight"),
                 ("transformer.ln_f.weight", "model.norm.weight")]
    return names + ([] if config.tie_embeddings else [("lm_head.weight", "lm_head.weight")])


def _qkv_names(arch: str, i: int) -> tuple[str, ...]:
    if arch == GPT2:
        return (f"transformer.h.{i}.attn.c_attn",)
    return tuple(f"model.layers.{i}.self_attn.{p}_proj" for p in "qkv")


def to_hf_state(config: GPTConfig, arch: str, state: dict) -> dict[str, np.ndarray]:
    """tinyllm's state dict (name -> float32 host array) as the tensors of a Hugging Face file of `arch`."""
    def get(name, shape):
        return state[name] if name in state else np.zeros(shape, np.float32)  # a bias the config leaves out

    C, kvd = config.d_model, config.kv_heads * config.head_dim
    out = {hf: state[tl] for tl, hf in _global_names(arch, config) if tl in state}
    if arch == GPT2 and "transformer.ln_f.bias" not in state:
        out["transformer.ln_f.bias"] = np.zeros(C, np.float32)
    for i in range(config.n_layer):
        for tl, hf, transposed in _layer_names(arch, config, i):
            shape = (C,) if hf.endswith(("ln_1.bias", "ln_2.bias", "c_proj.bias")) else (config.d_ff,)
            w = get(tl, shape)
            out[hf] = np.ascontiguousarray(w.T) if transposed else w
        w = state[f"transformer.h.{i}.attn.c_attn.weight"]  # (C + 2·kvd, C)
        b = state.get(f"transformer.h.{i}.attn.c_attn.bias")
        if arch == GPT2:
            (name,) = _qkv_names(arch, i)
            out[name + ".weight"] = np.ascontiguousarray(w.T)  # (C, 3C): Conv1D stores (in, out)
            out[name + ".bias"] = b if b is not None else np.zeros(3 * C, np.float32)
            continue
        cuts = (0, C, C + kvd, C + 2 * kvd)  # q | k | v rows
        for k, name in enumerate(_qkv_names(arch, i)):
            out[name + ".weight"] = np.ascontiguousarray(w[cuts[k]:cuts[k + 1]])
            if b is not None:
                out[name + ".bias"] = np.ascontiguousarray(b[cuts[k]:cuts[k + 1]])
    return out


def from_hf_state(config: GPTConfig, arch: str, tensors: dict, source: str) -> dict[str, np.ndarray]:
    """A Hugging Face file's tensors (float32) as tinyllm's state dict for a GPT of `config`.

    Names are looked up with or without the base model's prefix ("transformer." / "model."): the
    files of transformers' base classes and the LM-head ones both load. A missing tensor raises
    ValueError naming it; buffers transformers stores (attn.bias masks, rotary inv_freq) are ignored.
    """
    prefix = "transformer." if arch == GPT2 else "model."

    def take(name, bias_shape=None):
        for key in (name, name[len(prefix):] if name.startswith(prefix) else prefix + name):
            if key in tensors:
                return tensors[key]
        if bias_shape is not None:
            return np.zeros(bias_shape, np.float32)  # e.g. a Llama with attention_bias but no mlp_bias
        raise ValueError(f"{source}: no tensor {name!r}; the file does not hold a {arch} model of this config.json "
                         f"(it has {len(tensors)} tensors, e.g. {sorted(tensors)[:3]})")

    C, kvd = config.d_model, config.kv_heads * config.head_dim
    state = {tl: take(hf) for tl, hf in _global_names(arch, config)}
    if config.tie_embeddings:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    for i in range(config.n_layer):
        for tl, hf, transposed in _layer_names(arch, config, i):
            shape = None
            if hf.endswith(".bias"):
                shape = (config.d_ff,) if ("gate_proj" in hf or "up_proj" in hf) else (C,)
            w = take(hf, shape)
            state[tl] = np.ascontiguousarray(w.T) if transposed else w
        names = _qkv_names(arch, i)
        if arch == GPT2:
            state[f"transformer.h.{i}.attn.c_attn.weight"] = np.ascontiguousarray(take(names[0] + ".weight").T)
            state[f"transformer.h.{i}.attn.c_attn.bias"] = take(names[0] + ".bias")
            continue
        state[f"transformer.h.{i}.attn.c_attn.weight"] = np.concatenate([take(n + ".weight") for n in names])
        if config.bias:
            sizes = (C, kvd, kvd)
            state[f"transformer.h.{i}.attn.c_attn.bias"] = np.concatenate(
                [take(n + ".bias", (s,)) for n, s in zip(names, sizes)])
    return state


# ----------------------------------------------------------------------------- files

def write_safetensors(tensors: dict[str, np.ndarray], path) -> None:
    """tensors (float32 host arrays) as a safetensors file transformers loads (metadata format "pt"), atomically."""
    data = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    write_atomic(path, safetensors.numpy.save(data, metadata=_LAYOUT_MARK))


def read_safetensors(path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as float32 arrays (F32, F16, BF16, F64), each checked against the file."""
    path = pathlib.Path(path)
    data = read_regular_file(path, "weights file")
    if len(data) < 8:
        raise ValueError(f"{path} is not a safetensors file ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ValueError(f"{path} is not a safetensors file (its header claims {n:,} bytes of {len(data):,})")
    header = parse_json(data[8:8 + n].decode("utf-8", "replace"), f"{path} (safetensors header)")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: the safetensors header is not a JSON object")
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        size = 2 if dtype == "BF16" else np.dtype(_FLOATS.get(dtype, np.uint8)).itemsize
        if dtype not in _FLOATS and dtype != "BF16":
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}; tinyllm reads F32, F16, BF16 and F64 "
                             "weights (a quantized checkpoint needs dequantizing first)")
        if not 0 <= begin <= end <= len(body) or end - begin != count * size:
            raise ValueError(f"{path}: tensor {name!r} ({dtype} {list(shape)}) has data_offsets {[begin, end]} that "
                             f"do not fit its size or the file; the file is truncated or corrupt")
        raw = body[begin:end]
        if dtype == "BF16":  # bfloat16 = the top 16 bits of a float32
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, np.dtype(_FLOATS[dtype]).newbyteorder("<")).astype(np.float32)
        out[name] = arr.reshape(shape)
    return out


def read_hf_weights(directory) -> dict[str, np.ndarray]:
    """Every tensor of a Hugging Face model folder (model.safetensors, or the shards of its index), float32."""
    directory = pathlib.Path(directory)
    if (directory / WEIGHTS_NAME).is_file():
        return read_safetensors(directory / WEIGHTS_NAME)
    if (directory / INDEX_NAME).is_file():
        index = parse_json(read_regular_file(directory / INDEX_NAME, "weights index").decode("utf-8"),
                           str(directory / INDEX_NAME))
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(f"{directory / INDEX_NAME} has no \"weight_map\" object")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            if not isinstance(shard, str) or pathlib.Path(shard).name != shard:
                raise ValueError(f"{directory / INDEX_NAME} names a shard {shard!r} outside its folder")
            tensors.update(read_safetensors(directory / shard))
        return tensors
    pickled = [n for n in PICKLE_NAMES if (directory / n).exists()]
    if pickled:
        raise ValueError(f"{directory} holds its weights as {pickled[0]}, a pickle: loading one runs code named in "
                         "the file, so tinyllm never reads it. Convert it to safetensors with transformers "
                         "(if you trust the file): AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(DIR, "
                         "safe_serialization=True)")
    raise FileNotFoundError(f"no {WEIGHTS_NAME} (or {INDEX_NAME}) in {directory}")

