"""The least memory a training run needs, checked before anything is allocated.

A GPT of P parameters trained with AdamW keeps four float32 values per parameter: the weight,
its gradient and Adam's two moments (16·P bytes). Each step adds the logits of the B·T positions
over V tokens and their gradient (2 · 4·B·T·V bytes); the other activations come on top. So

    training_bytes = 16·P + 8·B·T·V        (P from nn.pretrained.min_parameters, itself a lower bound)

is a lower bound: a run above it cannot fit in this machine's memory; a run below it may still
not. check_fits refuses the first kind with a message naming the sizes, where building it would
end in a MemoryError. Depth has a limit of its own, MAX_LAYERS: a hundred thousand blocks of width
8 fit in a few megabytes, but building them and stepping through them one by one takes hours.

Example (the stories-char preset: 4 layers of d_model 128, vocabulary 65, batch 16 x 64):
    training_bytes(GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128), 16)
    -> 16 * 802_944 + 8 * 16 * 64 * 65 = 13_379_584   (13 MB)
"""

from __future__ import annotations

import os

from tinyllm.nn.config import GPTConfig
from tinyllm.nn.pretrained import min_parameters

MAX_LAYERS = 1024  # the deepest published LLMs have about 120 layers


def training_bytes(config: GPTConfig, batch_size: int) -> int:
    """A lower bound on the bytes that training a GPT of `config` on batches of `batch_size` needs."""
    return 16 * min_parameters(config) + 8 * batch_size * config.context_length * config.vocab_size


def host_memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say (POSIX sysconf)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(config: GPTConfig, batch_size: int, device: str) -> None:
    """Refuse (ValueError) a run deeper than MAX_LAYERS or needing more than this machine's memory.

    On "cuda" the model lives in the GPU's memory, not the host's; CuPy refuses what does not fit.
    """
    if config.n_layer > MAX_LAYERS:
        raise ValueError(f"n_layer={config.n_layer} is past the limit of {MAX_LAYERS} layers (MAX_LAYERS in "
                         f"tinyllm/train/memory.py): choose a smaller n_layer")
    total = host_memory_bytes()
    if device == "cuda" or total is None:
        return
    need = training_bytes(config, batch_size)
    if need > total:
        raise ValueError(
            f"training this model needs at least {need / 2**30:,.1f} GiB (16 bytes per parameter for the weights, "
            f"gradients and AdamW's moments, at least {min_parameters(config):,} parameters, plus a batch's "
            f"logits), more than this machine's {total / 2**30:,.1f} GiB: choose smaller sizes (n_layer="
            f"{config.n_layer}, d_model={config.d_model}, d_ff={config.d_ff}, context_length="
            f"{config.context_length}, batch_size={batch_size})")
