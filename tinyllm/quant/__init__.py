"""tinyllm.quant: smaller weights, the same model (within a measured error).

    half.py       float16 by hand: the scale of every GGUF block
    ggml.py       GGUF's block formats Q8_0, Q4_0, Q5_0, byte for byte as ggml writes them:
                  quantize(x, "q8_0") -> the bytes, dequantize(raw, "q8_0", shape) -> float32
    intq.py       int8 per output channel (symmetric, or with a zero point), int4 per group of inputs
"""

from tinyllm.quant.ggml import FORMATS as BLOCK_FORMATS
from tinyllm.quant.ggml import dequantize, quantize
from tinyllm.quant.intq import INT_FORMATS, dequantize_int, quantize_int

__all__ = ["BLOCK_FORMATS", "INT_FORMATS", "dequantize", "dequantize_int", "quantize", "quantize_int"]
