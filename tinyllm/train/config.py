"""What a training run is: a frozen TrainConfig, and named presets of it.

A run is fully described by two frozen dataclasses: the model's ``GPTConfig``
(its ``vocab_size`` comes from the tokenizer) and this ``TrainConfig`` (data,
optimizer, schedule, evaluation, where to write). Both go into every checkpoint
as JSON, so a run can be resumed, and a reader can see exactly what made a model.

The learning rate follows ``tinyllm.optim.schedule``: linear warmup from 0 over
``warmup_iters`` steps to ``learning_rate``, cosine decay to ``min_lr`` at
``lr_decay_iters``, then flat. AdamW decays only the matrices (weights of
Linear and Embedding, ``ndim >= 2``), never biases or norm gains, as in nanoGPT.

Presets:

    stories-char     the README's main job: nanoGPT's CPU model (below) on the built-in
                     story corpus, 800 iterations of 16 x 64 characters at lr 4e-3
    shakespeare-char-cpu
                     nanoGPT's documented CPU recipe (README of karpathy/nanoGPT,
                     "I only have a macbook"): 4 layers, 4 heads, d_model 128,
                     context 64, batch 12, 2000 iters, lr 1e-3 -> 1e-4, dropout 0
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import typing
from dataclasses import dataclass

import numpy as np

from tinyllm.nn.config import GPTConfig
from tinyllm.train.objectives import OBJECTIVES


@dataclass(frozen=True)
class TrainConfig:
    data: str = "stories"            # a corpus name ("stories", "tinyshakespeare", "names"), a file or a folder
    tokenizer: str = "char"          # "char" or "bpe:VOCAB", e.g. "bpe:512"
    out_dir: str = "out/stories-char"
    val_fraction: float = 0.1
    batch_size: int = 16
    max_iters: int = 1000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0           # 0 turns clipping off
    grad_accum: int = 1              # micro-batches per step: batch_size is split into this many (same step)
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 10
    seed: int = 1337
    device: str | None = None        # None: TINYLLM_DEVICE or cpu
    sample_tokens: int = 300         # printed at the end of `tinyllm train`; 0 for none
    objective: str = "clm"           # "clm" | "mlm" | "prefix_lm" (train/objectives.py)

    def __post_init__(self):
        def need(ok, msg):
            if not ok:
                raise ValueError(f"TrainConfig: {msg}")

        # the types first (a config read back from a checkpoint may hold anything), then the ranges
        for f in dataclasses.fields(self):
            value, kinds = getattr(self, f.name), _TYPES[f.name]
            plain = _plain(value, kinds)
            need(plain is not _WRONG, f"{f.name} must be {' or '.join(_name(k) for k in kinds)}, got {value!r}")
            object.__setattr__(self, f.name, plain)  # subtle: frozen, so set it like this
        for name in ("batch_size", "max_iters", "eval_interval", "eval_iters", "log_interval", "grad_accum"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        need(self.warmup_iters >= 0, f"warmup_iters must be >= 0, got {self.warmup_iters}")
        need(self.warmup_iters <= self.decay_iters,
             f"warmup_iters={self.warmup_iters} must be <= lr_decay_iters={self.decay_iters}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(0 <= self.min_lr <= self.learning_rate,
             f"min_lr must be in [0, learning_rate={self.learning_rate}], got {self.min_lr}")
        need(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"betas must be in [0, 1), got {self.beta1}, {self.beta2}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        need(self.sample_tokens >= 0, f"sample_tokens must be >= 0, got {self.sample_tokens}")
        need(self.objective in OBJECTIVES, f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        need(self.seed >= 0, f"seed must be an integer >= 0, got {self.seed}")
        tok = self.tokenizer
        need(tok == "char" or (tok.startswith("bpe:") and tok[4:].isdigit()),
             f"tokenizer must be 'char' or 'bpe:VOCAB' (e.g. 'bpe:512'), got {tok!r}")
        need(tok == "char" or int(tok[4:]) >= 256,
             f"tokenizer {tok!r}: a byte-level BPE vocabulary starts from the 256 single bytes, so VOCAB "
             f"must be at least 256 (e.g. 'bpe:512')")

    @property
    def decay_iters(self) -> int:
        return self.max_iters if self.lr_decay_iters is None else self.lr_decay_iters

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {unknown}; known: {sorted(known)}")
        return cls(**d)


_WRONG = object()


def _plain(value, kinds: tuple):
    """`value` as the plain JSON-able type of a field that allows `kinds`, or _WRONG.

    A path is its string, a NumPy integer an int, an int stays an int where a float is allowed;
    a bool is never a number: _plain(Path("a.txt"), (str,)) -> "a.txt", _plain(True, (int,)) -> _WRONG
    """
    if value is None:
        return None if type(None) in kinds else _WRONG
    if isinstance(value, (bool, np.bool_)):
        return _WRONG
    if str in kinds and isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if int in kinds and isinstance(value, numbers.Integral):
        return int(value)
    if float in kinds and isinstance(value, numbers.Real):
        return value if isinstance(value, (int, float)) else float(value)
    return _WRONG


def _name(kind) -> str:
    return "None" if kind is type(None) else {int: "an integer", float: "a number", str: "a string"}[kind]


# each field's allowed types, from its annotation: {"lr_decay_iters": (int, NoneType), "min_lr": (float,), ...}
_TYPES = {name: typing.get_args(hint) or (hint,) for name, hint in typing.get_type_hints(TrainConfig).items()}

# Model fields a preset sets; vocab_size is filled in from the tokenizer.
# nanoGPT's CPU model (0.8M parameters at a vocabulary of 65), for both presets
_CPU_CHAR_MODEL = dict(context_length=64, n_layer=4, n_head=4, d_model=128, dropout=0.0, bias=False)

PRESETS: dict[str, tuple[dict, dict]] = {
    "stories-char": (
        dict(data="stories", tokenizer="char", out_dir="out/stories-char", batch_size=16, max_iters=800,
             learning_rate=4e-3, min_lr=4e-4, warmup_iters=50, eval_interval=200, eval_iters=10),
        _CPU_CHAR_MODEL,
    ),
    "shakespeare-char-cpu": (
        dict(data="tinyshakespeare", tokenizer="char", out_dir="out/shakespeare-char-cpu", batch_size=12,
             max_iters=2000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
             weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250, eval_iters=20),
        _CPU_CHAR_MODEL,
    ),
}
DEFAULT_PRESET = "stories-char"


def model_fields() -> list[str]:
    """GPTConfig fields a user may set (vocab_size comes from the tokenizer)."""
    return [f.name for f in dataclasses.fields(GPTConfig) if f.name != "vocab_size"]


def preset(name: str = DEFAULT_PRESET, **overrides) -> tuple[TrainConfig, dict]:
    """(TrainConfig, model fields) of a preset with `overrides` applied to either.

    preset("shakespeare-char-cpu", max_iters=10, n_layer=2) -> (TrainConfig(..., max_iters=10), {..., "n_layer": 2})
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    train_fields, model = dict(PRESETS[name][0]), dict(PRESETS[name][1])
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    model_names = set(model_fields())
    for key, value in overrides.items():
        if key in train_names:
            train_fields[key] = value
        elif key in model_names:
            model[key] = value
        else:
            raise ValueError(f"unknown setting {key!r}: not a TrainConfig field {sorted(train_names)} "
                             f"nor a model field {sorted(model_names)}")
    if "max_iters" in overrides and "warmup_iters" not in overrides:
        # a shorter run than the preset's keeps its warmup at most a tenth of the run
        train_fields["warmup_iters"] = min(train_fields.get("warmup_iters", 100), overrides["max_iters"] // 10)
    return TrainConfig(**train_fields), model
