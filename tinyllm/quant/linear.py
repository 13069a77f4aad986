"""QuantLinear and quantize_model: a GPT whose matrices are stored quantized and multiplied as stored.

    y = x W̃ᵀ + b,   W̃ = the matrix a QuantizedWeight stands for (tinyllm/quant/weight.py)

A QuantLinear keeps the quantized bytes as buffers (they move with ``model.to(device)`` and are
saved by ``state_dict``), the bias in float32, and runs ``qmatmul`` (tinyllm/quant/qmatmul.py): the
block kernels for a few rows (decoding), tiles through BLAS for many (a prompt). It is
differentiable in x (grad_x = grad_y W̃, for a LoRA or a probe on top of a frozen quantized
model) but not in W: its bytes are not parameters.

``quantize_model(model, "q4_0")`` swaps every Linear inside the transformer blocks for a
QuantLinear, in place, round-to-nearest ("RTN": each weight to its nearest level, no data
needed). The embeddings, the norms and the LM head stay in float32, as AWQ and GPTQ leave them:
they are a small part of a large model and the most sensitive part of a small one (the
sensitivity sweep of examples/14_quantization.py measures it). ``tinyllm.quant.awq`` chooses
per-channel scales on calibration data first; then the same call quantizes.

    method      what each Linear of a block becomes
    f16         weights rounded to float16 (2 bytes; the product in float32)
    q8_0, q5_0, q4_0           ggml's blocks of 32, activations to Q8_0 (llama.cpp's CPU path)
    int8, int8_asym            8 bits per row of W, float activations
    int4, int4_sym             4 bits per group of group_size inputs (default 128), float activations

Example:
    >>> quantize_model(model, "q4_0")
    >>> model.transformer.h[0].mlp.c_fc
    QuantLinear(in_features=128, out_features=512, bias=True, q4_0, 4.50 bits)
    >>> model.generate(ids, 50, temperature=0)            # the KV cache and sampling as before
"""

from __future__ import annotations

import numpy as np

from tinyllm.function import Function
from tinyllm.nn.linear import Linear
from tinyllm.nn.module import Module
from tinyllm.quant.qmatmul import qmatmul
from tinyllm.quant.weight import FORMATS, QuantizedWeight
from tinyllm.tensor import Tensor

METHODS = ("f16",) + FORMATS
BUFFERS = ("blocks", "q", "scale", "zero")  # the arrays of a QuantizedWeight, as buffers named weight_<key>


class QuantMatmul(Function):
    """y = x W̃ᵀ + b for a QuantizedWeight W̃ (or a float16 matrix); gradient for x and b only."""

    @staticmethod
    def forward(ctx, x, bias, weight=None):
        x2 = x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in)
        if isinstance(weight, QuantizedWeight):
            y = qmatmul(x2, weight)
        else:  # float16: read as float32
            y = x2 @ weight.astype(np.float32).T
        if bias is not None:
            y += bias
        ctx.weight, ctx.x_shape = weight, x.shape
        return y.reshape(*x.shape[:-1], y.shape[-1])  # (M, out) -> (..., out)

    @staticmethod
    def backward(ctx, grad_out):
        # y = x W̃ᵀ + b:  grad_x = grad_out W̃,  grad_b = Σ_rows grad_out  (W̃ is not a parameter)
        w = ctx.weight
        w = w.dequantize() if isinstance(w, QuantizedWeight) else w.astype(np.float32)
        g2 = grad_out.reshape(-1, w.shape[0])  # (..., out) -> (M, out)
        need_x, need_b = ctx.needs_input_grad
        grad_x = (g2 @ w).reshape(ctx.x_shape) if need_x else None
        grad_b = g2.sum(axis=0) if need_b else None
        return grad_x, grad_b


class QuantLinear(Module):
    """A Linear whose weight is stored in format ``method`` (module docstring); build one with from_linear."""

    def __init__(self, in_features: int, out_features: int, method: str, arrays: dict, bias=None,
                 group_size: int | None = None):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"QuantLinear: unknown method {method!r}; expected one of {METHODS}")
        self.in_features, self.out_features, self.method = in_features, out_features, method
        self.group_size = group_size
        for key, array in arrays.items():
            self.register_buffer(f"weight_{key}", Tensor(array))
        if bias is not None:
            self.bias = bias
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_linear(cls, linear: Linear, method: str, group_size: int | None = None) -> QuantLinear:
        """Quantize linear.weight (round to nearest); the bias Parameter is kept as it is."""
        w = linear.weight.data
        if method == "f16":
            arrays = {"f16": w.astype(np.float16)}
        else:
            qw = QuantizedWeight.from_float(w, method, group_size=group_size)
            arrays, group_size = qw.arrays, qw.group_size
        return cls(linear.in_features, linear.out_features, method, arrays, linear.bias, group_size)

    def quantized_weight(self):
        """The QuantizedWeight over this layer's buffers (the float16 array for "f16")."""
        if self.method == "f16":
            return self.weight_f16.data
        arrays = {key: self._buffers[f"weight_{key}"].data for key in BUFFERS if f"weight_{key}" in self._buffers}
        return QuantizedWeight(self.method, (self.out_features, self.in_features), arrays, self.group_size)

    def dequantized_weight(self):
        """The float32 (out, in) matrix the layer multiplies by (a copy)."""
        w = self.quantized_weight()
        return w.dequantize() if isinstance(w, QuantizedWeight) else w.astype(np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored weight (the bias not counted)."""
        return int(sum(b.data.nbytes for name, b in self._buffers.items() if name.startswith("weight_")))

    def forward(self, x):
        return QuantMatmul.apply(x, self.bias, weight=self.quantized_weight())

    def extra_repr(self) -> str:
        bits = 8 * self.nbytes / (self.in_features * self.out_features)
        g = f", group_size={self.group_size}" if self.method.startswith("int4") else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"{self.method}{g}, {bits:.2f} bits")


def block_linears(model) -> list[tuple[str, Linear]]:
    """(name, module) of every Linear inside the transformer blocks, in order (what quantize_model swaps)."""
    return [(name, m) for name, m in model.named_modules() if type(m) is Linear and ".h." in f".{name}"]


def _set(model, name: str, module: Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize_model(model, method: str, group_size: int | None = None, skip=()):
    """Swap every Linear of the blocks (block_linears) for a QuantLinear of `method`, in place -> model.

    skip: names of layers to leave in float32 (e.g. ["transformer.h.0.mlp.c_proj"], the sensitivity
    sweep's finding); a layer whose rows are not a multiple of the block or group size is an error
    that says so (keep it in float with skip, or pick another method).
    """
    if method not in METHODS:
        raise ValueError(f"quantize_model: unknown method {method!r}; expected one of {METHODS}")
    layers = block_linears(model)
    if not layers:
        raise ValueError("quantize_model: the model has no Linear inside transformer blocks to quantize "
                         "(already quantized?)")
    unknown = sorted(set(skip) - {name for name, _ in layers})
    if unknown:
        raise ValueError(f"quantize_model: skip names layers the model does not have: {unknown}")
    for name, linear in layers:
        if name in skip:
            continue
        try:
            _set(model, name, QuantLinear.from_linear(linear, method, group_size))
        except ValueError as e:
            raise ValueError(f"quantize_model: {name} {tuple(linear.weight.shape)}: {e}") from None
    return model


def model_nbytes(model) -> dict:
    """Bytes of the model's weights: {"quantized": the QuantLinears' stored weights, "float": every parameter}
    (a tied weight counted once)."""
    q = sum(m.nbytes for m in model.modules() if isinstance(m, QuantLinear))
    return {"quantized": int(q), "float": int(sum(p.data.nbytes for p in model.parameters()))}
