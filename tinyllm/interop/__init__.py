"""Interop (§15): tinyllm's models and tokenizers in the files other tools read, and back.

    hf.py            a Hugging Face model folder (transformers loads it with no custom code): save_hf, load_hf
    hf_config.py     GPTConfig <-> config.json: GPT2LMHeadModel or LlamaForCausalLM, or an error naming the field
    hf_weights.py    the state dict under Hugging Face's names and layouts; safetensors with F32/F16/BF16
    hf_tokenizer.py  byte-level BPE and character tokenizers <-> tokenizer.json
    onnx.py          an ONNX graph for ONNX Runtime, traced from the transformers folder: export_onnx
    gguf.py          a GGUF file llama.cpp runs ("gpt2" or "llama"), float or in tinyllm's own ggml blocks (§14)
    gguf_vocab.py    a tokenizer as a GGUF BPE vocabulary: tokens, merges recovered from ranks, pre-tokenizer
    llama_cpp.py     run the file in llama.cpp (llama-cpp-python) and compare tokens, logits, greedy text
    awq.py           a LLaMA-style model with AutoAWQ's packed 4-bit tensors, as a Hugging Face folder (§14)

Read hf.py first: it is the two functions a user calls; the three hf_* files are what they do.
"""

from .gguf import export_gguf
from .hf import load_hf, load_hf_config, load_hf_tokenizer, save_hf
from .hf_config import from_hf_config, hf_architecture, to_hf_config
from .hf_tokenizer import tokenizer_from_hf, tokenizer_json
from .onnx import export_onnx

__all__ = ["export_gguf", "export_onnx", "from_hf_config", "hf_architecture", "load_hf", "load_hf_config",
           "load_hf_tokenizer", "save_hf", "to_hf_config", "tokenizer_from_hf", "tokenizer_json"]
