"""The Tokenizer interface: what every tokenizer in tinyllm promises (the model is minbpe's base.py).

A tokenizer maps text to ids in [0, vocab_size) and back. Each id stands for a
byte string, ``token_bytes(id)``, and decoding concatenates them:

    decode(ids)  = (token_bytes(ids[0]) + token_bytes(ids[1]) + ...).decode("utf-8")
    decode(encode_ordinary(s)) == s       for every str s without lone surrogates

``encode_ordinary`` reads all of its text as text. ``encode`` also knows the
special tokens (``special_tokens``: str -> id, e.g. {"<|endoftext|>": 50256}) and
follows tiktoken's rules: a special token's string in the text is an error
(ValueError) unless it is in ``allowed_special`` ("all" or a set; it becomes the
special id) or ``disallowed_special=()`` turns the check off (it is read as text).
A tokenizer without special tokens has ``special_tokens == {}`` and there
``encode`` is ``encode_ordinary``.

Worked example, a character tokenizer and a byte-level BPE through the same calls::

    >>> char = CharTokenizer.from_text("hello")
    >>> char.encode("hole"), char.token_bytes(3), char.vocab_size, char.special_tokens
    ([1, 3, 2, 0], b'o', 4, {})
    >>> bpe = BPETokenizer.train("low lower lowest", vocab_size=260, special_tokens=["<|eot|>"])
    >>> bpe.encode("lowest<|eot|>", allowed_special="all"), bpe.token_bytes(257), bpe.special_tokens
    ([257, 101, 115, 116, 259], b'low', {'<|eot|>': 259})
    >>> bpe.decode(bpe.encode_ordinary("lowest")), char.decode(char.encode("hole"))
    ('lowest', 'hole')

Files: ``save(path)`` writes the tokenizer's file, whose JSON (the file itself, or
a sidecar ``<file>.json`` next to it) names its kind in a "format" field;
``load(path)`` reads it back. ``tinyllm.tokenizer.load_tokenizer(path)`` reads a
file or run folder of any kind by that field (files.py). Every tokenizer has a
``file_name`` (its name in a run folder) and a ``name`` (for messages and figures).

Implementations: ``CharTokenizer`` (char.py) and ``BPETokenizer`` (bpe.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def check_token_id(token_id, vocab_size: int) -> int:
    """token_id as an int, or an error if it is not an int in [0, vocab_size).

    check_token_id(3, 4) -> 3;  check_token_id(4, 4) -> ValueError;  check_token_id(1.0, 4) -> TypeError
    """
    if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)):
        raise TypeError(f"a token id must be an int, got {type(token_id).__name__}")
    if not 0 <= token_id < vocab_size:
        raise ValueError(f"no token with id {token_id} (vocab_size={vocab_size})")
    return int(token_id)


class Tokenizer:
    """Text <-> ids in [0, vocab_size); each id is a byte string. The contract is the module docstring.

    A subclass provides vocab_size, special_tokens, encode_ordinary, encode, decode,
    token_bytes, save and load, and the class attributes format and file_name.
    """

    name: str = "tokenizer"             # how messages and figures call it
    format: str                         # the "format" field of its JSON ("tinyllm.char", "tinyllm-bpe")
    file_name: str                      # its file in a run folder ("tokenizer.json", "tokenizer.tiktoken")
    special_tokens: dict[str, int]      # special-token string -> id ({} when there are none)

    def _missing(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not implement {what}, which every Tokenizer "
                                   f"must (see tinyllm/tokenizer/base.py)")

    @property
    def vocab_size(self) -> int:
        """1 + the largest id: every id of encode is < vocab_size."""
        raise self._missing("vocab_size")

    def encode_ordinary(self, text: str) -> list[int]:
        """The ids of text, all of it read as text (a special token's string is plain text)."""
        raise self._missing("encode_ordinary")

    def encode(self, text: str, allowed_special=frozenset(), disallowed_special="all") -> list[int]:
        """The ids of text; special tokens' strings follow tiktoken's rules (module docstring)."""
        raise self._missing("encode")

    def decode(self, ids) -> str:
        """The text of a sequence of ids (a list or an integer array)."""
        raise self._missing("decode")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one id stands for (a special token's as its UTF-8)."""
        raise self._missing("token_bytes")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer at path (its JSON, or a file and its JSON sidecar); returns the path."""
        raise self._missing("save")

    @classmethod
    def load(cls, path: str | os.PathLike, trust_pattern: bool = False) -> "Tokenizer":
        """The tokenizer that save wrote at path. trust_pattern=True accepts a split regex tinyllm does not
        know, for kinds that store one (BPE); without it such a file is refused (patterns.check_loaded_pattern)."""
        raise NotImplementedError(f"{cls.__name__} does not implement load, which every Tokenizer must")

    # ---- provided for every tokenizer -----------------------------------------------------
    def encode_ordinary_array(self, text: str) -> np.ndarray:
        """encode_ordinary(text) as a 1-D integer array (a whole corpus at once; subclasses make it fast)."""
        return np.asarray(self.encode_ordinary(text), dtype=np.int64)

    def visualize(self, text: str, allowed_special="all"):
        """Which chunk of text became which id: a TokenView (visualize.py) that prints colored spans
        in a terminal, renders as HTML in Jupyter and writes a page with .to_html(path)."""
        from .visualize import visualize

        return visualize(self, text, allowed_special=allowed_special)
