"""tinyllm.quant: smaller weights, the same model (within a measured error).

    half.py       float16 by hand: the scale of every GGUF block
    ggml.py       GGUF's block formats Q8_0, Q4_0, Q5_0, byte for byte as ggml writes them:
                  quantize(x, "q8_0") -> the bytes, dequantize(raw, "q8_0", shape) -> float32
    intq.py       int8 per output channel (symmetric, or with a zero point), int4 per group of inputs
    weight.py     QuantizedWeight: one matrix in one of those formats, its bytes and its product
    qmatmul.py    x Wᵀ reading the blocks as stored (Numba), and the reference it is checked against
    linear.py     QuantLinear, and quantize_model(model, method): a GPT with quantized blocks
    awq.py        activation-aware scaling (AWQ): per-channel scales searched on calibration data, folded
                  into the op before, and a clipping search; then quantize_model rounds
    qat.py        quantization-aware training: fake-quantized Linears, a finetuning loop, convert back
"""

from tinyllm.quant.ggml import FORMATS as BLOCK_FORMATS
from tinyllm.quant.ggml import dequantize, quantize
from tinyllm.quant.intq import INT_FORMATS, dequantize_int, quantize_int
from tinyllm.quant.linear import METHODS, QuantLinear, model_nbytes, quantize_model
from tinyllm.quant.weight import FORMATS, QuantizedWeight

__all__ = ["BLOCK_FORMATS", "FORMATS", "INT_FORMATS", "METHODS", "QuantLinear", "QuantizedWeight", "dequantize",
           "dequantize_int", "model_nbytes", "quantize", "quantize_int",
           "quantize_model"]
