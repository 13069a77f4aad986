"""BPETokenizer: a byte-level BPE vocabulary you can train, encode with, save, and hand to tiktoken.

It implements the Tokenizer interface (base.py). The pieces (each file teaches one):
    patterns.py    how text is cut into pre-tokens before BPE
    reference.py   training in plain Python;  train.py  the same in Numba
    encoder.py     encoding with the ranks, exactly as tiktoken does
    rankfile.py    tiktoken's rank file + a JSON sidecar

A tokenizer is ``ranks`` (token bytes -> id; the 256 single bytes and the merged
tokens, id = rank = merge order), a split ``pattern`` and ``special_tokens``
(str -> id, ids after the ranks). Worked example::

    tok = BPETokenizer.train("low lower lowest", vocab_size=260, special_tokens=["<|eot|>"])
    tok.token_bytes(256), tok.token_bytes(257)    -> b"lo", b"low"        (259 ranks + 1 special)
    tok.encode("lowest<|eot|>", allowed_special="all") -> [257, 101, 115, 116, 259]

Special tokens follow tiktoken: ``encode`` refuses text that contains a special
token's string (ValueError) unless it is in ``allowed_special`` (then it becomes
the special id) or the check is turned off with ``disallowed_special=()`` (then it
is encoded as ordinary text). ``encode_ordinary`` never produces special ids.

Lone surrogates: a str such as "a\\ud800" cannot be UTF-8 encoded. As tiktoken
does, each lone surrogate is encoded as U+FFFD (so decode gives "a\\ufffd");
decode(encode(s)) == s for every str without lone surrogates.

Length: ~340 lines: the class is the Tokenizer interface plus tiktoken interop and
its error messages; the algorithms themselves live in the files listed above.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np

from . import rankfile
from .base import Tokenizer, check_token_id
from .patterns import WHOLE_TEXT_PATTERN, resolve_pattern

_UNSET = object()


class BPETokenizer(Tokenizer):
    """Byte-level BPE: ranks (bytes -> id), a split pattern, special tokens (str -> id)."""

    format = rankfile.FORMAT              # the "format" of its JSON sidecar
    file_name = "tokenizer.tiktoken"      # + tokenizer.tiktoken.json in a run folder

    def __init__(self, ranks: dict[bytes, int], pattern: str | None = "gpt2",
                 special_tokens: dict[str, int] | None = None, name: str = "tinyllm-bpe", validate: bool = True):
        self.ranks = rankfile.check_ranks(ranks) if validate else dict(ranks)
        self.pattern = resolve_pattern(pattern)
        self.special_tokens = _check_specials(special_tokens or {}, self.ranks)
        self.name = name
        self.merges: list[tuple[int, int, int]] | None = None  # (left, right, new id) when trained here
        self._decoder = None
        self._encoder = None

    # ---- training -------------------------------------------------------------------------
    @classmethod
    def train(cls, text_or_texts, vocab_size: int, pattern: str | None = "gpt2", special_tokens=(),
              progress: bool = True, name: str = "tinyllm-bpe") -> "BPETokenizer":
        """Learn a vocabulary of vocab_size tokens (special tokens included) from a str or an iterable of str.

        Byte-level BPE with the tie-breaking rule of reference.py (highest count, then the
        smallest (left, right) id pair). Text is cut at special tokens, which are not learned
        and get the last ids. If the text runs out of pairs first, the vocabulary is smaller
        (a warning says so).
        """
        from .train import train_bpe

        specials = _special_list(special_tokens)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256 + len(specials):
            raise ValueError(f"vocab_size={vocab_size} is too small: byte-level BPE needs the 256 byte tokens "
                             f"plus {len(specials)} special token(s), so at least {256 + len(specials)}")
        regex_str = resolve_pattern(pattern)
        n_ranks = int(vocab_size) - len(specials)
        merges, vocab = train_bpe(text_or_texts, n_ranks, regex_str, specials, progress=progress)
        if len(vocab) < n_ranks:
            warnings.warn(f"training stopped at {len(vocab)} of {n_ranks} mergeable tokens: no adjacent pair is left "
                          "in the text; use more text or a smaller vocab_size", stacklevel=2)
        ranks = {t: i for i, t in enumerate(vocab)}
        tok = cls(ranks, regex_str, {s: len(vocab) + k for k, s in enumerate(specials)}, name=name, validate=False)
        tok.merges = merges
        return tok

    # ---- the vocabulary -------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """1 + the largest id (ranks and special tokens), as tiktoken's n_vocab."""
        return max([len(self.ranks) - 1, *self.special_tokens.values()]) + 1

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token's as UTF-8). token_bytes(256) -> b" t" for example."""
        table = self._table()
        token_id = check_token_id(token_id, len(table))
        if table[token_id] is None:
            raise ValueError(f"no token with id {token_id}: an unused id in this vocabulary "
                             f"(vocab_size={self.vocab_size})")
        return table[token_id]

    def _table(self) -> list:
        if self._decoder is None:  # built on first use: id -> bytes (None for an unused id)
            table = [None] * self.vocab_size
            for t, i in self.ranks.items():
                table[i] = t
            for s, i in self.special_tokens.items():
                table[i] = s.encode("utf-8")
            self._decoder = table
        return self._decoder

    # ---- encoding -------------------------------------------------------------------------
    def _enc(self):
        if self._encoder is None:
            from .encoder import Encoder

            self._encoder = Encoder(self.ranks, self.pattern)
        return self._encoder

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of text with no special-token handling (a special token's string is plain text)."""
        return self._enc().encode_ordinary(_check_text(text))

    def encode_ordinary_array(self, text: str) -> np.ndarray:
        """encode_ordinary(text) as a uint32 array, straight from the kernel (for a whole corpus)."""
        return self._enc().encode_ordinary_array(_check_text(text))

    def encode(self, text: str, allowed_special=frozenset(), disallowed_special="all") -> list[int]:
        """Token ids of text, with tiktoken's rules for special tokens.

        allowed_special: "all" or a set of special-token strings encoded as their special id.
        disallowed_special: "all" (every special token not allowed) or a set: finding one of
        them in the text raises ValueError; () turns the check off.
        encode("hi<|eot|>", allowed_special={"<|eot|>"}) -> [..."hi"..., id of <|eot|>]
        """
        text = _check_text(text)
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if disallowed:
            self._raise_if_special(text, disallowed)
        if not allowed:
            return self._enc().encode_ordinary(text)
        parts, start, regex = [], 0, self._specials_regex()  # parts: text segments (str) and special ids (int)
        while True:
            pos, m = start, None
            while True:  # the next special token that is allowed (as tiktoken's core does)
                m = regex.search(text, pos)
                if m is None or m.group() in allowed:
                    break
                pos = m.start() + 1
            end = len(text) if m is None else m.start()
            if end > start:  # subtle: the split pattern sees each segment alone ("\s++$" matches before a special)
                parts.append(text[start:end])
            if m is None:
                break
            parts.append(self.special_tokens[m.group()])
            start = m.end()
        # all segments in one kernel call (a text with thousands of special tokens is thousands of segments)
        encoded = iter(self._enc().encode_ordinary_batch([p for p in parts if isinstance(p, str)]))
        out = []
        for p in parts:
            if isinstance(p, str):
                out += next(encoded)
            else:
                out.append(p)
        return out

    def encode_batch(self, texts, allowed_special=frozenset(), disallowed_special="all",
                     num_threads: int = 1) -> list[list[int]]:
        """encode of each text; with no special tokens allowed, num_threads > 1 encodes in threads."""
        texts = [_check_text(t) for t in texts]
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if allowed:
            return [self.encode(t, allowed_special=allowed, disallowed_special=disallowed) for t in texts]
        if disallowed:
            for t in texts:
                self._raise_if_special(t, disallowed)
        return self._enc().encode_ordinary_batch(texts, num_threads=num_threads)

    def _special_sets(self, allowed_special, disallowed_special):
        specials = set(self.special_tokens)
        allowed = specials if allowed_special == "all" else set(allowed_special)
        if isinstance(allowed_special, str) and allowed_special != "all":
            raise TypeError(f"allowed_special must be 'all' or a set of strings, got the string {allowed_special!r}")
        if disallowed_special == "all":
            disallowed = specials - allowed
        elif isinstance(disallowed_special, str):
            raise TypeError("disallowed_special must be 'all' or a set of strings, "
                            f"got the string {disallowed_special!r}")
        else:
            disallowed = set(disallowed_special)
        return allowed & specials, disallowed

    def _specials_regex(self):
        # subtle: longest first, so that of two special tokens starting at the same place the longer wins
        # (tiktoken's order there is its hash map's; real vocabularies have no such pairs)
        return _any_of(frozenset(self.special_tokens))

    @staticmethod
    def _raise_if_special(text: str, disallowed) -> None:
        m = _any_of(frozenset(disallowed)).search(text)
        if m is not None:
            token = m.group()
            raise ValueError(
                f"the text contains the special token {token!r} at character {m.start()}, which is disallowed. "
                f"To encode it as the special token, pass allowed_special={{{token!r}}} (or 'all'); to encode it "
                f"as plain text, pass disallowed_special=() (or a set without it).")

    # ---- decoding -------------------------------------------------------------------------
    def decode_bytes(self, ids) -> bytes:
        """The bytes of a sequence of token ids (special tokens as their UTF-8)."""
        table = self._table()
        arr = np.asarray(ids)
        if arr.ndim != 1 and arr.size:
            raise ValueError(f"expected a 1-D sequence of token ids, got shape {arr.shape}")
        if arr.size == 0:
            return b""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers, got {arr.dtype} values (e.g. {arr.reshape(-1)[0]!r})")
        bad = np.flatnonzero((arr < 0) | (arr >= len(table)))
        if bad.size:
            raise ValueError(f"expected token ids in [0, vocab_size={self.vocab_size}), got {int(arr[bad[0]])} "
                             f"at position {int(bad[0])}")
        parts = [table[i] for i in arr.tolist()]
        if None in parts:
            k = parts.index(None)
            raise ValueError(f"id {int(arr[k])} at position {k} is not a token (an unused id in this vocabulary)")
        return b"".join(parts)

    def decode(self, ids, errors: str = "replace") -> str:
        """decode_bytes(ids).decode("utf-8", errors): a token can end inside a character, so the default
        replaces broken UTF-8 with U+FFFD; errors="strict" raises instead."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    # ---- tiktoken and files ---------------------------------------------------------------
    @classmethod
    def from_tiktoken(cls, encoding_or_rank_file, pattern=_UNSET, special_tokens: dict[str, int] | None = None,
                      name: str | None = None) -> "BPETokenizer":
        """From a tiktoken.Encoding (its ranks, pattern and special tokens) or a tiktoken rank file.

        For a rank file, pass the pattern it was trained with (e.g. "gpt2" for GPT-2's
        r50k ranks) and its special tokens ({"<|endoftext|>": 50256} for GPT-2).
        """
        enc = encoding_or_rank_file
        if hasattr(enc, "_mergeable_ranks") and hasattr(enc, "_pat_str"):
            specials = dict(enc._special_tokens) if special_tokens is None else special_tokens
            pat = enc._pat_str if pattern is _UNSET else pattern
            return cls(dict(enc._mergeable_ranks), pat, specials, name=name or enc.name)
        if not isinstance(enc, (str, os.PathLike)):
            raise TypeError(f"expected a tiktoken.Encoding or the path of a rank file, got {type(enc).__name__}")
        if pattern is _UNSET:
            raise ValueError("a rank file does not say how text was split: pass pattern=... "
                             "('gpt2' for GPT-2's r50k ranks, 'gpt4', 'o200k', a regex, or None)")
        tok = cls(rankfile.read_ranks(enc), pattern, special_tokens, name=name or Path(enc).stem, validate=False)
        return tok

    @classmethod
    def gpt2(cls, path=None) -> "BPETokenizer":
        """GPT-2's tokenizer (r50k_base) from its rank file: $TINYLLM_DATA_DIR/gpt2.tiktoken by default."""
        if path is None:
            data_dir = os.environ.get("TINYLLM_DATA_DIR")
            if not data_dir:
                raise FileNotFoundError("set TINYLLM_DATA_DIR to the folder holding gpt2.tiktoken, or pass its path")
            path = Path(data_dir) / "gpt2.tiktoken"
        return cls.from_tiktoken(path, pattern="gpt2", special_tokens={"<|endoftext|>": 50256}, name="gpt2")

    def to_tiktoken(self, name: str | None = None):
        """A tiktoken.Encoding with the same ranks, pattern and special tokens (encodes identically).

        With pattern None (no pre-split) the Encoding gets WHOLE_TEXT_PATTERN, which makes
        each text (between special tokens) a single piece, as here.
        """
        import tiktoken

        return tiktoken.Encoding(name or self.name,
                                 pat_str=self.pattern if self.pattern is not None else WHOLE_TEXT_PATTERN,
                                 mergeable_ranks=dict(self.ranks), special_tokens=dict(self.special_tokens))

    def save(self, path) -> Path:
        """Write the rank file at path (e.g. OUT/tokenizer.tiktoken) and its JSON sidecar next to it; returns path."""
        rankfile.save(path, self.ranks, self.pattern, self.special_tokens)
        return Path(path)

    @classmethod
    def load(cls, path, trust_pattern: bool = False) -> "BPETokenizer":
        """Read a tokenizer written by save (the rank file and its sidecar), checking both.

        A split pattern other than gpt2/gpt4/o200k/whole-text/none is refused (UntrustedPatternError):
        a regex from a file can make encoding hang. trust_pattern=True runs whatever regex the file holds.
        """
        ranks, pattern, special = rankfile.load(path, trust_pattern=trust_pattern)
        return cls(ranks, pattern, special, name=Path(path).stem, validate=False)

    def __repr__(self) -> str:
        from .patterns import pattern_name

        pat = pattern_name(self.pattern) or ("None" if self.pattern is None else "custom")
        return (f"BPETokenizer(vocab_size={self.vocab_size}, ranks={len(self.ranks)}, pattern={pat}, "
                f"special_tokens={len(self.special_tokens)})")


@functools.lru_cache(maxsize=64)
def _any_of(strings: frozenset):
    """A compiled regex matching any of the strings (longest first where two start at the same place)."""
    import regex

    return regex.compile("|".join(regex.escape(s) for s in sorted(strings, key=lambda s: (-len(s), s))))


def _check_text(text) -> str:
    if not isinstance(text, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"expected text as str, got {type(text).__name__}{hint}")
    return text


def _special_list(special_tokens) -> list[str]:
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a sequence of strings, got the string {special_tokens!r}; "
                        f"write [{special_tokens!r}]")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"a special token must be a non-empty str, got {s!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special tokens must be distinct, got {specials}")
    return specials


def _check_specials(special_tokens: dict[str, int], ranks: dict[bytes, int]) -> dict[str, int]:
    if not isinstance(special_tokens, dict):
        raise TypeError(f"special_tokens must be a dict str -> id, got {type(special_tokens).__name__}")
    _special_list(special_tokens)
    ids = list(special_tokens.values())
    for s, i in special_tokens.items():
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
            raise ValueError(f"special token {s!r} needs an int id >= 0, got {i!r}")
        if i < len(ranks):
            raise ValueError(f"special token {s!r} has id {i}, which is a mergeable rank (< {len(ranks)}); "
                             f"special ids come after the ranks")
    if len(set(ids)) != len(ids):
        raise ValueError(f"two special tokens share an id: {special_tokens}")
    return {s: int(i) for s, i in special_tokens.items()}
