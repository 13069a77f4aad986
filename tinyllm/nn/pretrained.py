"""A model folder: weights and config side by side, as Hugging Face lays them out.

    directory/model.safetensors   the flat state dict, GPT-2 names (tinyllm.save: safetensors, no pickle)
    directory/config.json         GPTConfig.to_dict(), indented

A tied lm_head.weight is not stored (it is transformer.wte.weight), as in
Hugging Face's GPT-2 files; loading puts it back, and refuses a file whose
lm_head differs from wte while the config says they are tied. GPT.save_pretrained
and GPT.from_pretrained are these two functions.

Example:
    >>> save_pretrained(model, "out/model")   # -> out/model/{model.safetensors, config.json}
    >>> load_pretrained(GPT, "out/model")     # the same weights, in eval mode
"""

from __future__ import annotations

import json
import pathlib

from tinyllm import backend
from tinyllm.nn.config import GPTConfig
from tinyllm.serialization import load, save, write_atomic

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


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
        config = GPTConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"GPT.from_pretrained: {directory / CONFIG_NAME} is not a valid GPT config: {e}") from e
    state = load(directory / WEIGHTS_NAME, device=device)
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
