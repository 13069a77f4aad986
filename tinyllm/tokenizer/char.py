"""CharTokenizer: one token per Unicode character of the training text (a Tokenizer, base.py).

The simplest tokenizer there is, and the one char-rnn and nanoGPT's Shakespeare
recipe use. The vocabulary is the sorted set of characters seen in the training
text; a character's id is its position in that list:

    vocab  = sorted(set(text))                   # sorted by code point
    encode = [vocab.index(c) for c in text]      # (a dict lookup, not .index)
    decode = "".join(vocab[i] for i in ids)

Worked example::

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.chars, tok.vocab_size
    (('e', 'h', 'l', 'o'), 4)
    >>> tok.encode("hole")
    [1, 3, 2, 0]
    >>> tok.decode([1, 0, 2, 2, 3])
    'hello'
    >>> tok.token_bytes(3), tok.special_tokens
    (b'o', {})

A character outside the vocabulary has no id: encoding it is an error that names
the character and where it is, never a silent <unk>. Special tokens (e.g. the
``[MASK]`` of a masked-LM run) take the ids after the characters, in the order
given, and ``encode`` follows tiktoken's rules for them (base.py); without any,
``encode`` is ``encode_ordinary``. Saved as JSON (never pickle), in a run folder
as ``tokenizer.json`` ("special_tokens" only when there are some):

    {"format": "tinyllm.char", "version": 1, "chars": ["e", "h", "l", "o"], "special_tokens": ["[MASK]"]}
    CharTokenizer.from_text("hello", special_tokens=["[MASK]"]).encode("he[MASK]", allowed_special="all")
    -> [1, 0, 4]

``encode_ordinary`` is the reference; ``encode_ordinary_array`` does the same
lookup in NumPy (binary search over the sorted code points) for whole corpora,
and the tests check they agree.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from tinyllm.serialization import parse_json, read_regular_file, write_atomic

from .base import Tokenizer, check_token_id

FORMAT = "tinyllm.char"
FORMAT_VERSION = 1


def _describe(ch: str) -> str:
    return f"{ch!r} (U+{ord(ch):04X})"


class CharTokenizer(Tokenizer):
    """A vocabulary of single characters; ids are positions in the sorted list."""

    name = "CharTokenizer"
    format = FORMAT
    file_name = "tokenizer.json"

    def __init__(self, chars, special_tokens=()):
        chars = tuple(chars)
        specials = tuple(special_tokens)
        if any(not isinstance(t, str) or not t for t in specials) or len(set(specials)) != len(specials):
            raise ValueError(f"special tokens must be distinct non-empty strings, got {list(specials)}")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"a CharTokenizer vocabulary holds single characters, got {c!r}")
        if list(chars) != sorted(set(chars)):
            raise ValueError("the characters of a CharTokenizer must be unique and sorted by code point; "
                             "use CharTokenizer.from_text(text) to build one")
        if not chars:
            raise ValueError("a CharTokenizer needs at least one character; the training text was empty")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}
        self._specials = {t: len(chars) + k for k, t in enumerate(specials)}  # ids after the characters
        # sorted code points, for encode_ordinary_array's binary search (same order as chars)
        self._codes = np.fromiter((ord(c) for c in chars), dtype=np.int64, count=len(chars))

    @classmethod
    def from_text(cls, text: str, special_tokens=()) -> "CharTokenizer":
        """The tokenizer whose vocabulary is every distinct character of `text`, then the special tokens."""
        if not text:
            raise ValueError("cannot build a CharTokenizer from empty text")
        return cls(sorted(set(text)), special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self._specials)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token -> id, after the characters ({} when built without any)."""
        return dict(self._specials)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    def __eq__(self, other) -> bool:
        return isinstance(other, CharTokenizer) and (self.chars, self._specials) == (other.chars, other._specials)

    def __hash__(self) -> int:
        return hash((self.chars, tuple(self._specials)))

    # ------------------------------------------------------------------------- encode / decode

    def _unknown(self, ch: str, pos: int) -> ValueError:
        return ValueError(
            f"character {_describe(ch)} at position {pos} is not in this tokenizer's vocabulary of "
            f"{self.vocab_size} characters; build the tokenizer from text that contains it "
            f"(CharTokenizer.from_text) or remove it from the input"
        )

    def encode_ordinary(self, text: str) -> list[int]:
        """The reference encoder: one dict lookup per character -> list of ids."""
        if not isinstance(text, str):
            raise TypeError(f"expected text as str, got {type(text).__name__}")
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError as e:
            ch = e.args[0]
            raise self._unknown(ch, text.index(ch)) from None

    def encode(self, text: str, allowed_special=frozenset(), disallowed_special="all") -> list[int]:
        """The ids of text; a special token's string follows tiktoken's rules (base.py): an error unless allowed
        (then its id) or the check is off (disallowed_special=(): plain text). Without special tokens,
        encode_ordinary."""
        if not self._specials:
            return self.encode_ordinary(text)
        specials = set(self._specials)
        allowed = specials if allowed_special == "all" else set(allowed_special) & specials
        disallowed = specials - allowed if disallowed_special == "all" else set(disallowed_special) & specials
        for token in sorted(disallowed, key=len, reverse=True):
            if token in text:
                raise ValueError(f"the text contains the special token {token!r} at character {text.index(token)}, "
                                 f"which is disallowed. To encode it as the special token, pass allowed_special="
                                 f"{{{token!r}}} (or 'all'); as plain text, pass disallowed_special=()")
        if not allowed:
            return self.encode_ordinary(text)
        pattern = "|".join(re.escape(t) for t in sorted(allowed, key=len, reverse=True))  # longest first
        out, start = [], 0
        for m in re.finditer(pattern, text):
            out += self.encode_ordinary(text[start:m.start()])
            out.append(self._specials[m.group()])
            start = m.end()
        return out + self.encode_ordinary(text[start:])

    def encode_ordinary_array(self, text: str) -> np.ndarray:
        """The same ids as ``encode_ordinary`` as an int64 array, vectorized (for a whole corpus).

        codes = the text's code points; ids = searchsorted(vocab codes, codes); an id
        whose vocab code differs from the text's code is an unknown character.
        """
        if not isinstance(text, str):
            raise TypeError(f"expected text as str, got {type(text).__name__}")
        # subtle: UTF-32 gives one 4-byte unit per code point (no surrogate pairs), the same
        # units Python's str indexes; surrogatepass keeps lone surrogates instead of failing.
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int64)
        ids = np.searchsorted(self._codes, codes)
        ids_clipped = np.minimum(ids, len(self.chars) - 1)
        bad = self._codes[ids_clipped] != codes
        if bad.any():
            pos = int(np.argmax(bad))
            raise self._unknown(text[pos], pos)
        return ids

    def _piece(self, token_id: int) -> str:
        n = len(self.chars)
        return self.chars[token_id] if token_id < n else tuple(self._specials)[token_id - n]

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 of the character with this id: token_bytes(i) = chars[i].encode("utf-8") (a special token's
        string after them)."""
        # subtle: surrogatepass, so a lone surrogate in the vocabulary (a str can hold one) has bytes too
        return self._piece(check_token_id(token_id, self.vocab_size)).encode("utf-8", "surrogatepass")

    def decode(self, ids) -> str:
        """Ids (a list or an integer array) -> the text; an id outside [0, vocab_size) is an error."""
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"expected integer token ids, got an array of {arr.dtype}")
        arr = arr.ravel()
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            pos = int(np.argmax(bad))
            raise ValueError(f"expected token ids in [0, vocab_size={self.vocab_size}), got {int(arr[pos])} "
                             f"at position {pos}")
        chars = self.chars + tuple(self._specials)
        return "".join([chars[i] for i in arr.tolist()])

    # ------------------------------------------------------------------------- save / load

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "version": FORMAT_VERSION, "chars": list(self.chars)}
        if self._specials:
            d["special_tokens"] = list(self._specials)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "CharTokenizer":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{source} is not a tinyllm character tokenizer (expected \"format\": \"{FORMAT}\")")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"{source} has character-tokenizer format version {d.get('version')!r}; this "
                             f"tinyllm reads version {FORMAT_VERSION}: upgrade tinyllm or rebuild the tokenizer")
        chars = d.get("chars")
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            what = "has no \"chars\" field" if "chars" not in d else f"has \"chars\" of type {type(chars).__name__}"
            raise ValueError(f"{source} {what}; a character tokenizer's file holds \"chars\": the list of its "
                             "characters, sorted: re-save it with CharTokenizer.save")
        specials = d.get("special_tokens", [])
        if not isinstance(specials, list) or not all(isinstance(t, str) for t in specials):
            raise ValueError(f"{source} has \"special_tokens\" of type {type(specials).__name__}; it must be a list "
                             "of strings (their ids follow the characters'): re-save it with CharTokenizer.save")
        try:
            return cls(chars, specials)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON at path (a run folder's is tokenizer.json); returns the path.
        Written to a temporary file, then renamed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # subtle: ensure_ascii escapes every non-ASCII character as \uXXXX, so even a lone
        # surrogate (not encodable as UTF-8) survives the round trip.
        write_atomic(path, (json.dumps(self.to_dict(), ensure_ascii=True, indent=1) + "\n").encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, trust_pattern: bool = False) -> "CharTokenizer":
        """The tokenizer save wrote at path (trust_pattern is unused: a character tokenizer has no pattern).
        A symbolic link is refused, as is any file without a proper "chars" list."""
        path = Path(path)
        try:
            d = parse_json(read_regular_file(path, "character tokenizer").decode("utf-8"), str(path))
        except FileNotFoundError:
            raise FileNotFoundError(f"no character tokenizer at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return cls.from_dict(d, source=str(path))
