"""A tinyllm model as a Hugging Face model folder, and back (§15).

    save_hf(model, tokenizer, "out/hf")      ->  out/hf/model.safetensors      the weights (hf_weights.py)
                                                 out/hf/config.json            GPT2LMHeadModel or LlamaForCausalLM
                                                 out/hf/generation_config.json (hf_config.py)
                                                 out/hf/tokenizer.json         (hf_tokenizer.py)
                                                 out/hf/tokenizer_config.json
    model, tokenizer = load_hf("out/hf")     a GPT (eval mode) and its tokenizer (None if the folder has none)

The folder loads in transformers with no custom code:

    AutoModelForCausalLM.from_pretrained("out/hf"), AutoTokenizer.from_pretrained("out/hf")

and computes the same logits (float32, to ~1e-6; the tests compare them at 1e-4 and check
that greedy generation gives the same tokens). load_hf reads what save_hf writes, and the
folders transformers writes for GPT-2 and Llama models (safetensors only, never a pickle),
so a checkpoint on disk runs and trains in tinyllm.

Worked example:
    >>> model = GPT(GPTConfig(vocab_size=300, context_length=32, n_layer=2, n_head=2, d_model=16))
    >>> save_hf(model, tok, "out/hf")
    >>> load_hf("out/hf")[0].config == model.config
    True
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from tinyllm import backend
from tinyllm.interop.hf_config import from_hf_config, hf_architecture, hf_model_type, to_hf_config
from tinyllm.interop.hf_tokenizer import (
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    eos_token,
    tokenizer_config,
    tokenizer_from_hf,
    tokenizer_json,
)
from tinyllm.interop.hf_weights import WEIGHTS_NAME, from_hf_state, read_hf_weights, to_hf_state, write_safetensors
from tinyllm.nn.gpt import GPT
from tinyllm.nn.pretrained import check_sizes
from tinyllm.serialization import parse_json, read_regular_file, write_atomic

CONFIG_NAME = "config.json"
GENERATION_CONFIG_NAME = "generation_config.json"
HF_FILES = (WEIGHTS_NAME, CONFIG_NAME, GENERATION_CONFIG_NAME, TOKENIZER_NAME, TOKENIZER_CONFIG_NAME)


def _write_json(path: pathlib.Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def save_hf(model: GPT, tokenizer, directory) -> pathlib.Path:
    """Write `model` (and `tokenizer`, unless None) as a Hugging Face model folder; returns the folder.

    Checks first (the architecture, the tokenizer's size against the model's vocab), then writes
    each file atomically. ValueError names the config field no standard architecture expresses.
    """
    config = model.config
    arch = hf_architecture(config)  # refuses before anything is written
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"save_hf: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                         f"{config.vocab_size}; this tokenizer does not belong to this model")
    eos = None if tokenizer is None else eos_token(tokenizer)
    eos_id = None if eos is None else tokenizer.special_tokens[eos]
    state = {k: backend.to_numpy(v.data).astype(np.float32, copy=False) for k, v in model.state_dict().items()}
    tensors = to_hf_state(config, arch, state)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(tensors, directory / WEIGHTS_NAME)
    _write_json(directory / CONFIG_NAME, to_hf_config(config, bos_token_id=eos_id, eos_token_id=eos_id))
    _write_json(directory / GENERATION_CONFIG_NAME, {"bos_token_id": eos_id, "eos_token_id": eos_id})
    if tokenizer is not None:
        _write_json(directory / TOKENIZER_NAME, tokenizer_json(tokenizer))
        _write_json(directory / TOKENIZER_CONFIG_NAME, tokenizer_config(tokenizer, config.context_length))
    return directory


def _foreign(source, what: str, read, *args, **kwargs):
    """read(*args) for a file made elsewhere: a shape it did not expect is a ValueError naming the file.

    # subtle: the files come from anyone; a KeyError or TypeError inside a reader is the file's fault, not a bug
    """
    try:
        return read(*args, **kwargs)
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
        why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        raise ValueError(f"{source} is not a {what} tinyllm can read ({why})") from None


def _read_json(path: pathlib.Path, what: str):
    try:
        return parse_json(read_regular_file(path, what).decode("utf-8"), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def load_hf_config(directory):
    """The GPTConfig of a Hugging Face model folder's config.json (GPT-2 or Llama)."""
    path = pathlib.Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}: not a Hugging Face model folder")
    return _foreign(path, "GPT-2 or Llama config.json", from_hf_config, _read_json(path, "model config"), str(path))


def load_hf_tokenizer(directory, trust_pattern: bool = False):
    """The tokenizer of a Hugging Face model folder (its tokenizer.json), or None when it has none."""
    path = pathlib.Path(directory) / TOKENIZER_NAME
    if not path.is_file():
        return None
    return _foreign(path, "tokenizer.json", tokenizer_from_hf, _read_json(path, "tokenizer file"), str(path),
                    trust_pattern=trust_pattern)


def load_hf(directory, device: str | None = None, trust_pattern: bool = False):
    """(model, tokenizer) of a Hugging Face GPT-2 or Llama folder; the model in eval mode on `device`.

    tokenizer is None when the folder has no tokenizer.json. trust_pattern: see tinyllm.tokenizer.patterns.
    """
    directory = pathlib.Path(directory)
    config = load_hf_config(directory)
    arch = hf_model_type(_read_json(directory / CONFIG_NAME, "model config"))
    tensors = _foreign(directory, "safetensors model folder", read_hf_weights, directory)
    check_sizes(config, sum(int(t.size) for t in tensors.values()), str(directory / CONFIG_NAME), "its weights")
    state = from_hf_state(config, arch, tensors, str(directory))
    with backend.use_device(device or backend.get_device()):
        model = GPT(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"load_hf: the weights in {directory} do not fit its {CONFIG_NAME}:\n{e}") from None
    return model.eval(), load_hf_tokenizer(directory, trust_pattern=trust_pattern)
