"""A tinyllm tokenizer as a GGUF "gpt2" vocabulary: tokens, merges and a pre-tokenizer llama.cpp knows.

llama.cpp's byte-level BPE (``llama-vocab.cpp``, the "gpt2" tokenizer model) reads three things
from a GGUF file and tokenizes as tiktoken and Hugging Face do:

    tokenizer.ggml.tokens   every token's text, id by id, in GPT-2's byte-to-unicode alphabet:
                            each byte is one printable character ('Ġ' is the space 0x20, 'Ċ' the
                            newline), so a token's bytes are a string (bytes_to_unicode)
    tokenizer.ggml.merges   "left right" for every merge, best first: the pair whose merged token
                            has the lowest rank merges first
    tokenizer.ggml.pre      the name of the split regex, one llama.cpp has compiled in:
                            "gpt-2" for GPT-2's pattern, "llama-bpe" for cl100k's (LLaMA 3 uses it)

tinyllm's BPE stores ranks (bytes -> id), as tiktoken does, not merges. A merge is recovered
from the ranks (the conversion Hugging Face's and llama.cpp's scripts do for tiktoken files):
run BPE on the token's own bytes using only the ranks below its own; what is left is the two
pieces it was made of. ``merges({b"a": 0, b"b": 1, b"ab": 2, b"abb": 3})`` -> [(b"a", b"b"),
(b"ab", b"b")].

A character vocabulary becomes a BPE vocabulary with no merges: each character is a one-byte
token, and llama.cpp, finding no merge, looks each byte up alone, exactly a character
tokenizer. So it works for characters that are one byte in UTF-8 (ASCII); a longer one is not
a merge of tokens the vocabulary has, and is refused.

Example:
    >>> vocab = gguf_vocabulary(tok, n_vocab=model.config.vocab_size)
    >>> vocab.tokens[:3], vocab.pre, len(vocab.merges)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from tinyllm.tokenizer.patterns import pattern_name

# the split regexes of tinyllm's BPE -> the name llama.cpp knows the same regex by
PRE_TOKENIZERS = {"gpt2": "gpt-2", "gpt4": "llama-bpe"}
NORMAL, CONTROL, UNUSED = 1, 3, 5  # gguf.TokenType


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from a byte to a printable character (Radford et al. 2019, encoder.py).

    The 188 printable Latin-1 bytes stand for themselves; the other 68 (control codes, space, ...)
    are moved to code points 256, 257, ... in order: 0x20 (space) -> 'Ġ' (U+0120), 0x0A -> 'Ċ'.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def token_text(b: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[x] for x in b)


def _pieces(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """BPE on token's bytes with the ranks below max_rank (the lowest-ranked pair first, leftmost on ties)."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


def merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merges that build every multi-byte token of ranks, in rank order (module docstring)."""
    out = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = _pieces(ranks, token, rank)
        if len(parts) != 2 or parts[0] not in ranks or parts[1] not in ranks:
            raise ValueError(f"token {rank} {token!r} is not one merge of two lower tokens (its pieces: {parts}), "
                             f"and llama.cpp's BPE builds every multi-byte token by merges; a character "
                             f"vocabulary exports only with one-byte (ASCII) characters: train a byte-level BPE "
                             f"tokenizer (--tokenizer bpe:VOCAB) instead")
        out.append((parts[0], parts[1]))
    return out


class Vocabulary(NamedTuple):
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str


def gguf_vocabulary(tok, n_vocab: int) -> Vocabulary:
    """The GGUF "gpt2" vocabulary of a tinyllm tokenizer, padded with unused tokens to the model's n_vocab rows.

    Any Tokenizer: its ordinary tokens are its ids below the first special one, read with token_bytes;
    the merges come from them as ranks (none for a character vocabulary of one-byte characters).
    """
    first_special = min(tok.special_tokens.values(), default=tok.vocab_size)
    ranks = {tok.token_bytes(i): i for i in range(first_special)}
    merge_list = merges(ranks)
    if not merge_list:
        pre = "gpt-2"  # no merge: every byte is looked up alone, whatever the split
    else:
        name = pattern_name(tok.pattern)
        if name not in PRE_TOKENIZERS:
            raise ValueError(f"llama.cpp knows the split patterns {sorted(PRE_TOKENIZERS)} of tinyllm's; this "
                             f"tokenizer's is {name or 'a custom one'}; retrain it with pattern='gpt2'")
        pre = PRE_TOKENIZERS[name]
    tokens = [token_text(b) for b in ranks]
    types = [NORMAL] * len(tokens)
    for text, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1]):
        if i != len(tokens):
            raise ValueError(f"special token {text!r} has id {i}, expected {len(tokens)} (after the others)")
        tokens.append(text)
        types.append(CONTROL)
    if len(tokens) > n_vocab:
        raise ValueError(f"the tokenizer has {len(tokens)} tokens but the model only {n_vocab} rows of embeddings")
    for i in range(len(tokens), n_vocab):  # rows the model has and the tokenizer never produces
        tokens.append(f"<unused{i}>")
        types.append(UNUSED)
    merge_texts = [f"{token_text(a)} {token_text(b)}" for a, b in merge_list]
    if not merge_texts:
        # subtle: llama.cpp refuses a BPE vocabulary without the merges key, and gguf-py writes no empty array.
        # One merge of two 2-character strings never fires: symbols start as single characters and only a
        # merge makes them longer, so no pair of 2-character symbols ever appears.
        merge_texts = [f"{tokens[0] * 2} {tokens[0] * 2}"]
    return Vocabulary(tokens, types, merge_texts, pre)
