"""QuantizedWeight: one (out, in) matrix in one storage format, and what it costs.

Every quantized layer holds one of these. The format decides the bytes and the
matrix product (tinyllm/quant/qmatmul.py):

    format      storage (tinyllm/quant/...)                   bits a weight   x in the product
    q8_0        ggml blocks of 32: half d + 32 int8 (ggml.py)      8.5          quantized to Q8_0 (as ggml)
    q5_0        half d + 32 five-bit q                              5.5          quantized to Q8_0
    q4_0        half d + 32 nibbles                                 4.5          quantized to Q8_0
    int8        int8 per row, float32 scale (intq.py)              8 + 32/in    float32
    int8_asym   uint8 per row, scale and zero point                8 + 40/in    float32
    int4        nibbles per group of g, scale and zero point       4 + 40/g     float32
    int4_sym    nibbles per group, scale (zero 8)                  4 + 40/g     float32

The ggml formats multiply the way llama.cpp does on a CPU: the activation row is itself cut into
blocks of 32 and quantized to Q8_0, so each block's dot product is a sum of int8 x int8 products
done in integers, then scaled once by d_w · d_x. The int formats keep x in float32
("weight-only", W4A16/W8A16 in the GPTQ/AWQ papers' words).

Example:
    >>> qw = QuantizedWeight.from_float(w, "q4_0")           # w: float32 (out, in), in a multiple of 32
    >>> qw.nbytes, qw.bits_per_weight                        # (out · in/32 · 18, 4.5)
    >>> y = qw.matmul(x)                                     # (B, in) -> (B, out), without a float copy of w
    >>> err = np.abs(qw.dequantize() - w).max()
"""

from __future__ import annotations

from tinyllm import backend
from tinyllm.quant import ggml, intq
from tinyllm.quant.qmatmul import qmatmul

FORMATS = ("q8_0", "q5_0", "q4_0") + intq.INT_FORMATS


class QuantizedWeight:
    """A (out, in) weight in format ``fmt`` (module docstring): ``matmul(x)``, ``dequantize()``, ``nbytes``."""

    def __init__(self, fmt: str, shape, arrays: dict, group_size: int | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"unknown weight format {fmt!r}; expected one of {FORMATS}")
        self.fmt, self.shape = fmt, (int(shape[0]), int(shape[1]))
        self.arrays = dict(arrays)    # ggml: {"blocks"}; int: {"q", "scale"} and "zero" unless int8
        self.group_size = int(group_size) if group_size is not None else self.shape[1]

    @classmethod
    def from_float(cls, w, fmt: str, group_size: int | None = None) -> QuantizedWeight:
        """Quantize the float (out, in) array w (a raw array, on any device)."""
        if fmt in ggml.FORMATS:
            if w.ndim != 2:
                raise ValueError(f"{fmt}: expected a (out, in) weight, got shape {tuple(w.shape)}")
            return cls(fmt, w.shape, {"blocks": ggml.quantize(w, fmt)}, ggml.QK)
        if fmt not in FORMATS:
            raise ValueError(f"unknown weight format {fmt!r}; expected one of {FORMATS}")
        iw = intq.quantize_int(w, fmt, group_size)
        arrays = {"q": iw.q, "scale": iw.scale}
        if iw.zero is not None:
            arrays["zero"] = iw.zero
        return cls(fmt, w.shape, arrays, iw.group_size)

    @property
    def is_ggml(self) -> bool:
        return self.fmt in ggml.FORMATS

    def int_weight(self) -> intq.IntWeight:
        return intq.IntWeight(self.fmt, self.arrays["q"], self.arrays["scale"], self.arrays.get("zero"),
                              self.group_size)

    def dequantize(self):
        """The float32 (out, in) matrix these bytes stand for (a full copy: for checks and the reference)."""
        if self.is_ggml:
            return ggml.dequantize(self.arrays["blocks"], self.fmt, self.shape)
        return intq.dequantize_int(self.int_weight())

    def dequantize_rows(self, start: int, stop: int):
        """Rows start..stop-1 as float32 (stop - start, in): a tile, for the many-row product."""
        if self.is_ggml:
            return ggml.dequantize(self.arrays["blocks"][start:stop], self.fmt, (stop - start, self.shape[1]))
        iw = self.int_weight()
        zero = None if iw.zero is None else iw.zero[start:stop]
        return intq.dequantize_int(iw._replace(q=iw.q[start:stop], scale=iw.scale[start:stop], zero=zero))

    def matmul(self, x):
        """x (B, in) float32 -> x Wᵀ (B, out), reading the quantized bytes (tinyllm/quant/qmatmul.py)."""
        return qmatmul(x, self)

    @property
    def nbytes(self) -> int:
        """Bytes of storage: the blocks, or q + scales + zero points."""
        return int(sum(a.nbytes for a in self.arrays.values()))

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.nbytes / (self.shape[0] * self.shape[1])

    @property
    def device(self) -> str:
        return backend.device_of(next(iter(self.arrays.values())))

    def to(self, device: str) -> QuantizedWeight:
        return QuantizedWeight(self.fmt, self.shape, {k: backend.asarray(v, device=device)
                                                      for k, v in self.arrays.items()}, self.group_size)

    def __repr__(self) -> str:
        g = f", group_size={self.group_size}" if self.fmt.startswith("int4") else ""
        return f"QuantizedWeight({self.fmt}, {self.shape}{g}, {self.nbytes:,} bytes, {self.bits_per_weight:.2f} bits)"
