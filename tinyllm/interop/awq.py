"""AWQ export: a LLaMA-style model with 4-bit weights in AutoAWQ's "gemm" layout, as Hugging Face reads it.

AutoAWQ (Lin et al. 2023; the casper-hansen/AutoAWQ package, ``WQLinear_GEMM.from_linear``) stores a
Linear's weight W (out, in), quantized per group of g inputs as W ≈ s · (q - z) with q, z in 0..15, in
three tensors, each laid out input-major:

    qweight  int32 (in, out/8)       eight q of one input row and 8 neighbouring outputs per int32
    qzeros   int32 (in/g, out/8)     the zero points, packed the same way
    scales   float16 (in/g, out)

Packing: output columns 8c .. 8c+7 go into int32 column c, the one at position AWQ_ORDER[i] into
bits 4i .. 4i+3, with AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (the order its CUDA kernel unpacks
pairs in). So q = [q0 .. q7] packs to q0 | q2 << 4 | q4 << 8 | q6 << 12 | q1 << 16 | ... | q7 << 28.

``export_awq`` writes a Hugging Face Llama folder (tinyllm/interop/hf.py, save_hf) in which every
Linear of the blocks (q, k, v, o, gate, up, down) holds those three tensors instead of its weight,
and config.json holds

    "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": g, "zero_point": true,
                             "version": "gemm", "modules_to_not_convert": null}

the keys transformers' AwqConfig and AutoAWQ read. The q, z and s are tinyllm's int4 format
(tinyllm/quant/intq.py), the scales rounded to float16 as AutoAWQ keeps them; run apply_awq on the
model first for AWQ's scales and clipping (tinyllm/quant/awq.py). GPT-2-style models are refused:
AutoAWQ replaces nn.Linear layers, and GPT-2's checkpoint layout stores Conv1D ones.

Example:
    >>> apply_awq(model, calib, "int4", group_size=128)
    >>> export_awq(model, tok, "out/awq", group_size=128)     # -> the folder
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import safetensors.numpy

from tinyllm import backend
from tinyllm.interop.hf import CONFIG_NAME, save_hf
from tinyllm.interop.hf_config import hf_architecture
from tinyllm.interop.hf_weights import WEIGHTS_NAME
from tinyllm.quant import intq
from tinyllm.quant.linear import QuantLinear, block_linears
from tinyllm.serialization import write_atomic

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
HF_NAMES = {"attn.c_proj": "self_attn.o_proj", "mlp.c_gate": "mlp.gate_proj", "mlp.c_fc": "mlp.up_proj",
            "mlp.c_proj": "mlp.down_proj"}


def pack_columns(v: np.ndarray) -> np.ndarray:
    """(rows, cols) of 0..15 -> int32 (rows, cols/8): column block c holds cols 8c..8c+7 in AWQ_ORDER."""
    v = v.astype(np.uint32).reshape(v.shape[0], -1, 8)[:, :, AWQ_ORDER]  # (rows, cols/8, 8)
    shifts = np.arange(0, 32, 4, dtype=np.uint32)
    # subtle: C order, whatever v's layout: safetensors writes an array's memory as it lies, strides unread
    return np.ascontiguousarray((v << shifts).sum(axis=2, dtype=np.uint32)).view(np.int32)


def unpack_columns(p: np.ndarray) -> np.ndarray:
    """The inverse of pack_columns: int32 (rows, cols/8) -> uint8 (rows, cols)."""
    nib = (p.view(np.uint32)[:, :, None] >> np.arange(0, 32, 4, dtype=np.uint32)) & np.uint32(15)  # (r, c/8, 8)
    out = np.empty_like(nib)
    out[:, :, AWQ_ORDER] = nib
    return out.reshape(p.shape[0], -1).astype(np.uint8)


def pack_awq(iw: intq.IntWeight) -> dict[str, np.ndarray]:
    """An int4 IntWeight (out, in) -> {"qweight", "qzeros", "scales"} in AutoAWQ's gemm layout."""
    if iw.fmt != "int4":
        raise ValueError(f"AutoAWQ stores 4-bit weights with zero points (tinyllm's int4), got {iw.fmt}")
    q = intq.unpack_int4(iw.q, iw.group_size)  # (out, in) in 0..15
    return {"qweight": pack_columns(q.T), "qzeros": pack_columns(iw.zero.T),
            "scales": np.ascontiguousarray(iw.scale.T.astype(np.float16))}


def dequantize_awq(t: dict[str, np.ndarray], group_size: int) -> np.ndarray:
    """W (out, in) float32 from the three tensors: s · (q - z), read back the way AutoAWQ unpacks them."""
    q, z = unpack_columns(t["qweight"]).astype(np.float32), unpack_columns(t["qzeros"]).astype(np.float32)
    s = t["scales"].astype(np.float32)
    g = np.arange(q.shape[0]) // group_size  # the group of each input row
    return ((q - z[g]) * s[g]).T


def export_awq(model, tokenizer, directory, group_size: int = 128) -> pathlib.Path:
    """Write model as a Hugging Face Llama folder with AutoAWQ's 4-bit tensors (module docstring) -> the folder."""
    c = model.config
    if hf_architecture(c) != "llama":
        raise ValueError("export_awq writes LLaMA-style models (rope, rmsnorm, swiglu, no bias): AutoAWQ quantizes "
                         "nn.Linear layers, which a GPT-2 checkpoint stores as Conv1D; export GGUF (q4_0) instead")
    if any(isinstance(m, QuantLinear) for m in model.modules()):
        raise ValueError("export_awq quantizes a float model (run apply_awq on it first for AWQ's scales); this one "
                         "already holds QuantLinear layers")
    packed = {}
    for name, module in block_linears(model):
        i, part = name.split(".")[2], name.split(".", 3)[3]  # transformer.h.{i}.{part}
        iw = intq.quantize_int(backend.to_numpy(module.weight.data).astype(np.float32), "int4", group_size)
        prefix = f"model.layers.{i}."
        if part == "attn.c_attn":  # q | k | v rows; tinyllm packs each row alone, so its rows split as they are
            nq, nk = c.n_head * c.head_dim, c.kv_heads * c.head_dim
            for key, a, b in (("q", 0, nq), ("k", nq, nq + nk), ("v", nq + nk, iw.q.shape[0])):
                rows = iw._replace(q=iw.q[a:b], scale=iw.scale[a:b], zero=iw.zero[a:b])
                packed[prefix + f"self_attn.{key}_proj"] = pack_awq(rows)
        else:
            packed[prefix + HF_NAMES[part]] = pack_awq(iw)
    directory = pathlib.Path(directory)
    save_hf(model, tokenizer, directory)
    tensors = safetensors.numpy.load_file(directory / WEIGHTS_NAME)  # the float file save_hf just wrote
    for hf_name, t in packed.items():
        tensors.pop(hf_name + ".weight")
        tensors.update({f"{hf_name}.{k}": v for k, v in t.items()})
    # int32 and float16 kept as they are (save_hf's writer makes every tensor float32)
    write_atomic(directory / WEIGHTS_NAME, safetensors.numpy.save(tensors, metadata={"format": "pt"}))
    config = json.loads((directory / CONFIG_NAME).read_text())
    config["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True,
                                     "version": "gemm", "modules_to_not_convert": None}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return directory
