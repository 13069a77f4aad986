"""A tinyllm model as an ONNX graph that ONNX Runtime runs, through the Hugging Face folder (§15).

ONNX is a file format for a computation graph (operators such as MatMul, Softmax, and the
weights as constants); ONNX Runtime executes it with its own kernels and graph
optimizations (fused attention, constant folding), with no Python model code at all.
The way there goes through transformers, which already knows how to trace GPT-2 and Llama:

    save_hf(model, tokenizer, tmp)                           tinyllm -> a transformers folder (hf.py)
    ORTModelForCausalLM.from_pretrained(tmp, export=True)    optimum traces it with torch.onnx,
                                                             with the KV cache as graph inputs/outputs
    .save_pretrained(out)                                    out/model.onnx, config.json, + the tokenizer

so the graph computes what transformers computes, which is what tinyllm computes
(tests/test_stacks_onnx.py compares the logits, 1e-4, and greedy tokens). Needs
``pip install optimum-onnx onnxruntime`` (and torch, transformers); nothing is imported
until export_onnx runs.

Example:
    >>> export_onnx(model, tok, "out/onnx")                  # -> out/onnx/model.onnx, ...
    >>> ORTModelForCausalLM.from_pretrained("out/onnx")      # generate() as with transformers
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile

from tinyllm.interop.hf import save_hf
from tinyllm.interop.hf_config import hf_architecture
from tinyllm.interop.hf_tokenizer import TOKENIZER_CONFIG_NAME, TOKENIZER_NAME

ONNX_NAME = "model.onnx"


def export_onnx(model, tokenizer, directory) -> pathlib.Path:
    """Write `model` (and `tokenizer`, unless None) as an ONNX Runtime folder (see the module docstring)."""
    hf_architecture(model.config)  # refuses an inexpressible config before anything is imported or written
    try:
        from optimum.onnxruntime import ORTModelForCausalLM
    except ImportError:
        raise ImportError("export_onnx needs optimum's ONNX exporter and ONNX Runtime: "
                          "pip install optimum-onnx onnxruntime") from None
    directory = pathlib.Path(directory)
    with tempfile.TemporaryDirectory() as tmp:
        save_hf(model, tokenizer, tmp)
        ORTModelForCausalLM.from_pretrained(tmp, export=True, use_cache=True).save_pretrained(directory)
        for name in (TOKENIZER_NAME, TOKENIZER_CONFIG_NAME):
            if (pathlib.Path(tmp) / name).is_file():
                shutil.copyfile(pathlib.Path(tmp) / name, directory / name)
    return directory
