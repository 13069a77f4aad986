"""From text to training batches: a tokenizer, a token array, a train/val split, random windows.

The language-modelling data pipeline of nanoGPT, step by step:

    text   --tokenizer-->  ids (N,)  uint16 if vocab_size <= 65536 else uint32
    ids    --split------>  train = ids[:n], val = ids[n:],  n = int(0.9 * N)   (contiguous)
    train  --get_batch-->  x = train[i : i+T],  y = train[i+1 : i+T+1]   for B random i

so y[b, t] is the token that follows x[b, :t+1]: every position of a window is a
next-token prediction. Worked example (T=3, one window starting at i=2)::

    ids = [5, 1, 4, 1, 5, 9]      x = [[4, 1, 5]]      y = [[1, 5, 9]]

The start positions come from a ``numpy.random.Generator`` the caller owns, so a
training loop can save ``rng.bit_generator.state`` (a JSON-able dict) in its
checkpoint and resume drawing the very same batches.

Token arrays too big for memory live in a ``.bin`` file of raw little-endian ids
(nanoGPT's format) with a JSON sidecar ``<file>.json`` that says how to read it
({"format": "tinyllm.tokens", "version": 1, "dtype": "uint16", "count": N,
"vocab_size": V}); ``load_tokens`` memory-maps it, so a batch reads only the
pages its windows touch.

Tokenizers: ``build_tokenizer("char", text)`` (a CharTokenizer) or
``build_tokenizer("bpe:512", text)`` (a BPETokenizer trained with GPT-2's split
pattern); any tinyllm.tokenizer.Tokenizer encodes a corpus here. Saving and
loading them in a run folder is tinyllm.tokenizer's (save_tokenizer,
load_tokenizer), re-exported by tinyllm.data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyllm.serialization import write_atomic
from tinyllm.tokenizer import BPETokenizer, CharTokenizer, Tokenizer

TOKENS_FORMAT = "tinyllm.tokens"
TOKENS_VERSION = 1
BPE_MIN_VOCAB = 256  # byte-level BPE starts from the 256 single bytes

# ----------------------------------------------------------------------------- tokenizers


def build_tokenizer(spec: str, text: str, *, progress: bool = False, special_tokens=()) -> Tokenizer:
    """A tokenizer fitted to `text`: "char" -> CharTokenizer, "bpe:VOCAB" -> a BPETokenizer of VOCAB ids;
    special_tokens (e.g. ["[MASK]"]) get the ids after the learned ones."""
    if spec == "char":
        return CharTokenizer.from_text(text, special_tokens=special_tokens)
    kind, _, vocab = spec.partition(":")
    if kind == "bpe":
        try:
            vocab_size = int(vocab)
        except ValueError:
            vocab_size = None
        if vocab_size is None or vocab_size < BPE_MIN_VOCAB:
            raise ValueError(f"tokenizer {spec!r}: the BPE vocabulary size must be an integer >= "
                             f"{BPE_MIN_VOCAB} (the single bytes), e.g. 'bpe:512'")
        return BPETokenizer.train(text, vocab_size, pattern="gpt2", progress=progress, special_tokens=special_tokens)
    raise ValueError(f"unknown tokenizer {spec!r}; use 'char' or 'bpe:VOCAB' (e.g. 'bpe:512')")


def encode_text(tok: Tokenizer, text: str) -> list[int]:
    """A prompt's ids: tok.encode_ordinary(text), so special-token text is read as plain text.

    A character the tokenizer cannot encode raises its own error (ValueError).
    """
    return list(tok.encode_ordinary(text))


# ----------------------------------------------------------------------------- token arrays


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 holds ids < 65536 (2 bytes a token, like nanoGPT's .bin files); larger vocabularies need uint32."""
    if not 1 <= vocab_size <= 2**32:
        raise ValueError(f"vocab_size must be in [1, 2**32], got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def check_tokens(tokens: np.ndarray, vocab_size: int) -> None:
    """Raise if any id is outside [0, vocab_size), naming the first one and its position (host-side check)."""
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        return
    if tokens.dtype.kind not in "iu":
        raise TypeError(f"expected an integer token array, got {tokens.dtype}")
    bad = tokens >= vocab_size
    if tokens.dtype.kind == "i":
        bad |= tokens < 0
    if bad.any():
        pos = int(np.argmax(bad.ravel()))
        raise ValueError(f"expected token ids < vocab_size={vocab_size}, got {int(tokens.ravel()[pos])} "
                         f"at position {pos}")


def encode_corpus(text: str, tok: Tokenizer) -> np.ndarray:
    """All of `text` as one 1-D token array in token_dtype(tok.vocab_size) (tok.encode_ordinary_array)."""
    ids = tok.encode_ordinary_array(text)
    check_tokens(ids, tok.vocab_size)
    return ids.astype(token_dtype(tok.vocab_size))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_tokens(path: str | os.PathLike, tokens: np.ndarray, vocab_size: int) -> Path:
    """Write ids as raw little-endian uint16/uint32 at `path` and the JSON sidecar `path`.json."""
    path = Path(path)
    tokens = np.asarray(tokens).ravel()
    check_tokens(tokens, vocab_size)
    dtype = token_dtype(vocab_size).newbyteorder("<")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tokens.astype(dtype, copy=False).tofile(tmp)
    os.replace(tmp, path)
    meta = {"format": TOKENS_FORMAT, "version": TOKENS_VERSION, "dtype": dtype.name,
            "count": int(tokens.size), "vocab_size": int(vocab_size)}
    # subtle: the sidecar is written last, so a crash mid-write leaves a .bin that load_tokens refuses.
    write_atomic(_sidecar(path), (json.dumps(meta) + "\n").encode("utf-8"))
    return path


def load_tokens(path: str | os.PathLike, mmap: bool = True) -> tuple[np.ndarray, int]:
    """(ids, vocab_size) from a file written by save_tokens; memory-mapped read-only unless mmap=False."""
    path = Path(path)
    side = _sidecar(path)
    if not side.is_file():
        raise FileNotFoundError(f"no sidecar {side} for the token file {path}; write token files with save_tokens")
    meta = json.loads(side.read_text(encoding="utf-8"))
    if meta.get("format") != TOKENS_FORMAT or meta.get("version") != TOKENS_VERSION:
        raise ValueError(f"{side} is not a version-{TOKENS_VERSION} tinyllm token sidecar: {meta}")
    dtype = np.dtype(meta["dtype"]).newbyteorder("<")
    count, vocab_size = int(meta["count"]), int(meta["vocab_size"])
    size = path.stat().st_size
    if size != count * dtype.itemsize:
        raise ValueError(f"{path} has {size} bytes but its sidecar promises {count} {dtype.name} ids "
                         f"({count * dtype.itemsize} bytes); the file is truncated or stale, rebuild it")
    if count == 0:
        return np.zeros(0, dtype), vocab_size  # subtle: np.memmap refuses an empty file
    if mmap:
        return np.memmap(path, dtype=dtype, mode="r", shape=(count,)), vocab_size
    return np.fromfile(path, dtype=dtype, count=count), vocab_size


# ----------------------------------------------------------------------------- split and batches


def split_tokens(tokens: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) = (tokens[:n], tokens[n:]) with n = int((1 - val_fraction) * len): contiguous views."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = int((1.0 - val_fraction) * len(tokens))
    if n == 0:
        raise ValueError(f"a split of {len(tokens)} tokens with val_fraction={val_fraction} leaves no training tokens")
    return tokens[:n], tokens[n:]


def get_batch(tokens: np.ndarray, batch_size: int, context_length: int, rng: np.random.Generator,
              vocab_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """B random windows of T+1 tokens -> (x, y), int64 host arrays of shape (B, T), y = x shifted by one.

    Start positions i ~ rng.integers(0, N - T, size=B), so every window tokens[i : i+T+1]
    fits. Given vocab_size, the batch's ids are checked < vocab_size here, on the host.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if batch_size < 1 or context_length < 1:
        raise ValueError(f"batch_size and context_length must be >= 1, got {batch_size} and {context_length}")
    n = len(tokens)
    if context_length + 1 > n:
        raise ValueError(f"context_length + 1 = {context_length + 1} tokens are needed for one (x, y) window but "
                         f"the split has only {n} tokens; use a shorter context_length or more data")
    ix = rng.integers(0, n - context_length, size=batch_size)           # (B,) window starts
    window = np.asarray(tokens[ix[:, None] + np.arange(context_length + 1)])  # (B, T+1)
    if vocab_size is not None:
        check_tokens(window, vocab_size)
    window = window.astype(np.int64)
    return np.ascontiguousarray(window[:, :-1]), np.ascontiguousarray(window[:, 1:])  # (B, T), (B, T)


@dataclass
class TokenDataset:
    """A corpus as train and val token arrays (in memory or memory-mapped) and its vocabulary size."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int

    def __post_init__(self):
        check_tokens(self.train, self.vocab_size)
        check_tokens(self.val, self.vocab_size)

    @classmethod
    def from_tokens(cls, tokens: np.ndarray, vocab_size: int, val_fraction: float = 0.1) -> "TokenDataset":
        train, val = split_tokens(tokens, val_fraction)
        return cls(train, val, vocab_size)

    @classmethod
    def from_text(cls, text: str, tok, val_fraction: float = 0.1) -> "TokenDataset":
        return cls.from_tokens(encode_corpus(text, tok), tok.vocab_size, val_fraction)

    def get_batch(self, split: str, batch_size: int, context_length: int, rng: np.random.Generator):
        """(x, y) int64 (B, T) from the "train" or "val" split; see get_batch."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return get_batch(getattr(self, split), batch_size, context_length, rng)

    def save(self, out_dir: str | os.PathLike) -> Path:
        """out_dir/train.bin and out_dir/val.bin, each with its JSON sidecar."""
        out_dir = Path(out_dir)
        save_tokens(out_dir / "train.bin", self.train, self.vocab_size)
        save_tokens(out_dir / "val.bin", self.val, self.vocab_size)
        return out_dir

    @classmethod
    def load(cls, out_dir: str | os.PathLike, mmap: bool = True) -> "TokenDataset":
        out_dir = Path(out_dir)
        train, v1 = load_tokens(out_dir / "train.bin", mmap)
        val, v2 = load_tokens(out_dir / "val.bin", mmap)
        if v1 != v2:
            raise ValueError(f"{out_dir}: train.bin has vocab_size {v1} but val.bin has {v2}; rebuild both")
        return cls(train, val, v1)


def prepare_data(data: str | os.PathLike = "stories", tokenizer: str = "char", val_fraction: float = 0.1,
                 *, progress: bool = False):
    """load_text + build_tokenizer + encode_corpus + split -> (tokenizer, TokenDataset).

    The tokenizer is fitted to the whole corpus (as nanoGPT's prepare.py does), so
    every character of the val split has an id.
    """
    from tinyllm.data.registry import load_text

    text = load_text(data)
    tok = build_tokenizer(tokenizer, text, progress=progress)
    return tok, TokenDataset.from_text(text, tok, val_fraction)
