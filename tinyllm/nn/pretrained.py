"""A model folder: weights and config side by side, as Hugging Face lays them out.

    directory/model.safetensors   the flat state dict, GPT-2 names (tinyllm.save: safetensors, no pickle)
    directory/config.json         GPTConfig.to_dict(), indented

A tied lm_head.weight is not stored (it is transformer.wte.weight), as in
Hugging Face's GPT-2 files; loading puts it back, and refuses a file whose
lm_head differs from wte while the config says they are tied. GPT.save_pretrained
and GPT.from_pretrained are these two functions.

A model folder may come from a stranger, so loading is bounded: neither file may
be a symbolic link (serialization.read_regular_file), config.json's JSON is
depth-bounded, and the sizes in config.json must fit the weights file: the
parameters a config implies (at least V·C + L·(2C² + 2·C·nkv·hs + 2·C·d_ff), plus
T·C for learned positions) and the tables built from the config alone (the
sinusoidal one, T·C) may exceed the values model.safetensors holds by at most
MAX_DERIVED_VALUES (a smaller mismatch is named tensor by tensor by load_state_dict).
So ``"context_length": 1000000000000`` is a message naming the limit, not a MemoryError.

Example:
    >>> save_pretrained(model, "out/model")   # -> out/model/{model.safetensors, config.json}
    >>> load_pretrained(GPT, "out/model")     # the same weights, in eval mode
"""

from __future__ import annotations

import json
import pathlib

from tinyllm import backend
from tinyllm.nn.config import GPTConfig
from tinyllm.serialization import load, parse_json, read_regular_file, save, write_atomic

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MAX_DERIVED_VALUES = 2**26  # values a model may build from its config alone, beyond its weights (256 MB float32)


def min_parameters(config: GPTConfig) -> int:
    """A lower bound on the values a GPT of `config` stores in its weights file (tied lm_head not counted).

    wte V·C, learned positions T·C, per layer q and c_proj 2C², k and v 2·C·nkv·hs, the MLP 2·C·d_ff
    (a block of E experts: E times that, and a router C·E)
    (biases and norms left out, so the bound stays below every variant), an untied lm_head V·C.
    min_parameters(GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128)) -> 802_944
    """
    C, V, T = config.d_model, config.vocab_size, config.context_length
    per_layer = 2 * C * C + 2 * C * config.kv_heads * config.head_dim + 2 * C * config.d_ff
    n_moe = config.n_layer // config.moe_every if config.n_expert else 0  # blocks whose MLP is E experts
    per_moe = (config.n_expert - 1) * 2 * C * config.d_ff  # and a router, C·E
    return (V * C + (T * C if config.pos_encoding == "learned" else 0) + config.n_layer * per_layer
            + n_moe * (per_moe + C * config.n_expert)
            + (0 if config.tie_embeddings else V * C))


def check_sizes(config: GPTConfig, n_values: int, config_source: str, weights_source: str) -> None:
    """Refuse (ValueError) a config whose model would far outgrow the n_values its weights file holds.

    See the module docstring; a training checkpoint's model_config can be checked the same way
    (n_values = the values of its model state dict) before GPT(config) allocates anything.
    """
    sizes = (f"vocab_size={config.vocab_size}, context_length={config.context_length}, n_layer={config.n_layer}, "
             f"d_model={config.d_model}, d_ff={config.d_ff}")
    limit = n_values + MAX_DERIVED_VALUES
    need = min_parameters(config)
    # subtle: a small mismatch is left to load_state_dict, whose message names each tensor; only a config
    # that would allocate far more than the file holds (past MAX_DERIVED_VALUES) is refused before building
    if need > limit:
        raise ValueError(f"{config_source} ({sizes}) describes a model of at least {need:,} parameters, but "
                         f"{weights_source} holds only {n_values:,} values (the limit is that + MAX_DERIVED_VALUES "
                         f"= {limit:,}): the config does not belong to these weights (or a size in it was edited); "
                         "fix the config")
    derived = config.context_length * config.d_model if config.pos_encoding == "sinusoidal" else 0
    if derived > limit:
        raise ValueError(f"{config_source} asks for a sinusoidal table of context_length={config.context_length} x "
                         f"d_model={config.d_model} = {derived:,} values, over the limit of the weights' size + "
                         f"MAX_DERIVED_VALUES = {limit:,}; lower context_length")


def save_pretrained(model, directory) -> pathlib.Path:
    """Write directory/model.safetensors (flat state dict, GPT-2 names) and directory/config.json.

    A tied lm_head.weight is not stored (it is transformer.wte.weight), as in
    Hugging Face's GPT-2 files. Both files are written atomically.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if model.config.tie_embeddings:
        del state["lm_head.weight"]
    save(dict(state), directory / WEIGHTS_NAME)
    write_atomic(directory / CONFIG_NAME, (json.dumps(model.config.to_dict(), indent=2) + "\n").encode())
    return directory


def load_pretrained(cls, directory, device: str | None = None):
    """The model (a cls(GPTConfig)) saved by save_pretrained, on `device` (default: the default device),
    in eval mode."""
    directory = pathlib.Path(directory)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"GPT.from_pretrained: no {name} in {directory} (a model folder holds "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME}, as model.save_pretrained writes)")
    try:
        config = GPTConfig.from_dict(parse_json(read_regular_file(directory / CONFIG_NAME, "model config")
                                                .decode("utf-8"), str(directory / CONFIG_NAME)))
    except (ValueError, TypeError) as e:  # UnsafePathError (a link) and UnicodeDecodeError are ValueErrors
        raise ValueError(f"GPT.from_pretrained: {directory / CONFIG_NAME} is not a valid GPT config: {e}") from e
    state = load(directory / WEIGHTS_NAME, device=device)
    try:
        check_sizes(config, sum(int(t.data.size) for t in state.values()), str(directory / CONFIG_NAME),
                    WEIGHTS_NAME)
    except ValueError as e:
        raise ValueError(f"GPT.from_pretrained: {e}") from None
    with backend.use_device(device or backend.get_device()):
        model = cls(config)
    if config.tie_embeddings and "transformer.wte.weight" in state:
        wte, head = state["transformer.wte.weight"], state.get("lm_head.weight")
        if head is not None and (head.shape != wte.shape
                                 or not bool(backend.to_numpy((head.data == wte.data).all()))):
            raise ValueError(f"GPT.from_pretrained: {directory} has tie_embeddings=True but its lm_head.weight "
                             "differs from transformer.wte.weight; set tie_embeddings to false in config.json")
        state["lm_head.weight"] = wte
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"GPT.from_pretrained: {WEIGHTS_NAME} does not match {CONFIG_NAME} in {directory}:\n{e}"
                         ) from e
    return model.eval()
