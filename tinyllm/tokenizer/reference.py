"""Byte-level BPE training in plain Python: the version to read first.

Byte-pair encoding (Sennrich et al. 2016, after Gage 1994) as GPT-2 uses it
(Radford et al. 2019): every text is UTF-8 bytes, so the 256 byte values are the
first 256 tokens and nothing is ever out of vocabulary. Training then repeats

    1. count every adjacent pair of tokens in the corpus,
    2. merge the most frequent pair (a, b) into a new token n = bytes(a) + bytes(b),
    3. replace every occurrence of a, b by n,

until the vocabulary has the size asked for. The merges, in order, are the
tokenizer: token id = its rank = the step that made it.

Two things make this fast enough in plain Python:

* Pre-tokens, not the corpus. Text is first cut by a regex (patterns.py) and BPE
  never merges across a cut, so training only needs each *unique* pre-token and
  how often it occurs: tinyshakespeare's 297,833 pre-tokens are 15,057 unique ones.
  A pair inside a word that occurs 40 times counts 40.
* Incremental counts. After merging (a, b) only the words that contain (a, b)
  change; we subtract their old pairs, merge, and add their new pairs. A
  ``where`` index (pair -> words containing it) finds them without a scan.

Worked example (no pre-split, 3 merges)::

    words {b"aaab": 1}    ids [97, 97, 97, 98]
    pairs (97,97): 2, (97,98): 1        -> merge (97, 97) -> 256 "aa"
    ids [256, 97, 98]    pairs (256,97): 1, (97,98): 1
                                        -> tie at 1: smallest pair (97, 98) -> 257 "ab"
    ids [256, 257]                      -> merge (256, 257) -> 258 "aaab"

The rules a reader (and the fast trainer in train.py, which must agree merge for
merge) needs to know:

* Tie-breaking: the pair with the highest count wins; among equal counts, the
  smallest (left id, right id) pair. This is deterministic and independent of
  dict or word order. (Hugging Face's BpeTrainer uses the same rule on its ids.)
* Merging inside a word is left to right and never overlaps:
  merge([5, 5, 5], (5, 5), 256) -> [256, 5].
* subtle: two different merges can make the same bytes: (a, bc) and later
  (ab, c) both make "abc". A rank file maps each byte string to ONE id, so the
  second merge reuses the existing id of "abc": it is recorded in ``merges``
  (left, right, existing id) but does not add a token to the vocabulary, and
  training goes on until the vocabulary really has ``n_tokens`` entries. (Starting
  from single bytes we never saw it happen in a random search over small
  alphabets; it does happen when training goes on from a given vocabulary, see
  initial_state, and the tests exercise the rule that way.)
* Training stops early (with fewer tokens) when no adjacent pair is left.
* Special tokens are not learned: training text is cut at them (count_pretokens)
  and they get ids after the mergeable ranks (bpe.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


def get_stats(ids: list[int], counts: dict | None = None, weight: int = 1) -> dict[tuple[int, int], int]:
    """Count adjacent pairs: counts[(ids[i], ids[i+1])] += weight for every i.

    get_stats([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    get_stats([1, 2], {(1, 2): 1}, weight=3) -> {(1, 2): 4}     (updates and returns counts)
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of pair in ids by new_id, left to right, without overlap.

    merge([1, 2, 3, 1, 2], pair=(1, 2), new_id=256) -> [256, 3, 256]
    merge([5, 5, 5], pair=(5, 5), new_id=256) -> [256, 5]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def as_texts(text_or_texts) -> Iterable[str]:
    """A str, or an iterable of str (each one a separate document), as an iterable of str."""
    if isinstance(text_or_texts, str):
        return (text_or_texts,)
    if isinstance(text_or_texts, (bytes, bytearray, memoryview)):
        raise TypeError("training text must be str (or an iterable of str), got bytes; "
                        "decode it first, e.g. data.decode('utf-8')")
    try:
        iter(text_or_texts)
    except TypeError:
        raise TypeError("training text must be a str or an iterable of str, "
                        f"got {type(text_or_texts).__name__}") from None

    def checked():
        for k, text in enumerate(text_or_texts):
            if not isinstance(text, str):
                raise TypeError(f"training text #{k} is {type(text).__name__}, expected str")
            yield text

    return checked()


def replace_surrogates(text: str) -> str:
    """tiktoken's policy for a str that cannot be UTF-8 encoded: lone surrogates become U+FFFD.

    replace_surrogates("a\\ud800b") -> "a\\ufffdb";  a str without lone surrogates is returned as is.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        # subtle: a surrogate PAIR written as two code points ("\\ud83d\\ude00") becomes the one
        # character it encodes, as in tiktoken; only unpaired surrogates become U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def split_specials(text: str, special_tokens: Iterable[str]) -> list[str]:
    """Cut text at every occurrence of a special token, dropping the special tokens.

    split_specials("a<|eot|>b", ["<|eot|>"]) -> ["a", "b"]
    """
    specials = [s for s in special_tokens]
    if not specials:
        return [text]
    import regex

    return regex.split("|".join(regex.escape(s) for s in specials), text)


def count_pretokens(text_or_texts, pattern: str | None, special_tokens: Iterable[str] = ()) -> dict[bytes, int]:
    """Unique pre-tokens (as UTF-8 bytes) and their counts, over one text or many.

    pattern is a regex (patterns.resolve_pattern) or None for no pre-split (each
    text, cut at special tokens, is one pre-token). Lone surrogates are replaced
    as tiktoken does (replace_surrogates).

    count_pretokens("hi hi", GPT2_PATTERN) -> {b"hi": 1, b" hi": 1}
    """
    import regex

    compiled = regex.compile(pattern) if pattern is not None else None
    counts: dict[str, int] = {}
    for text in as_texts(text_or_texts):
        for part in split_specials(replace_surrogates(text), special_tokens):
            pieces = compiled.findall(part) if compiled is not None else ([part] if part else [])
            for piece in pieces:
                if piece:  # a custom regex can match the empty string: no bytes, no tokens
                    counts[piece] = counts.get(piece, 0) + 1
    return {piece.encode("utf-8"): c for piece, c in counts.items()}


def initial_state(word_counts: dict, vocab: list[bytes] | None = None):
    """(words as lists of ids, their counts, the starting vocabulary) for a trainer.

    A key of word_counts is a pre-token's bytes (ids = its byte values) or, to go on
    from an existing vocabulary, a tuple of token ids into ``vocab`` (default: the
    256 single bytes, id = byte value).
    initial_state({b"hi": 2}) -> ([[104, 105]], [2], [b"\\x00", ..., b"\\xff"])
    """
    vocab = [bytes([i]) for i in range(256)] if vocab is None else [bytes(t) for t in vocab]
    if len(set(vocab)) != len(vocab):
        raise ValueError("the starting vocabulary has the same bytes twice; a rank file cannot hold a token twice")
    words, counts = [], []
    for word, count in word_counts.items():
        ids = list(word)
        if isinstance(word, tuple) and any(not 0 <= i < len(vocab) for i in ids):
            raise ValueError(f"word {word} has ids outside the starting vocabulary of {len(vocab)} tokens")
        if isinstance(word, (bytes, bytearray)) and len(vocab) < 256:
            raise ValueError("words given as bytes need the 256 byte tokens first in the vocabulary")
        if count < 0:
            raise ValueError(f"word {word!r} has a negative count {count}")
        words.append(ids)
        counts.append(int(count))
    return words, counts, vocab


def train_reference(word_counts: dict, n_tokens: int, vocab: list[bytes] | None = None):
    """Learn merges until the vocabulary has n_tokens byte strings (256 bytes + merged tokens).

    word_counts: unique pre-token -> count (count_pretokens); see initial_state for
    starting from another vocabulary. Returns (merges, vocab): merges[k] = (left id,
    right id, new id) in the order learned; vocab[id] = the token's bytes
    (vocab[:256] are the single bytes; len(vocab) <= n_tokens).

    train_reference({b"aaab": 1}, 259)
      -> ([(97, 97, 256), (97, 98, 257), (256, 257, 258)], [b"\\x00", ..., b"aa", b"ab", b"aaab"])
    """
    words, counts, vocab = initial_state(word_counts, vocab)
    if n_tokens < len(vocab):
        raise ValueError(f"n_tokens={n_tokens} is less than the {len(vocab)} tokens to start from; "
                         f"ask for at least {len(vocab)}")
    token_id = {b: i for i, b in enumerate(vocab)}

    stats: dict[tuple[int, int], int] = {}  # pair -> count over the corpus (weighted by word counts)
    where: dict[tuple[int, int], set[int]] = {}  # pair -> indices of the words that (may) contain it
    for w, (ids, c) in enumerate(zip(words, counts)):
        get_stats(ids, stats, c)
        for pair in zip(ids, ids[1:]):
            where.setdefault(pair, set()).add(w)
    # Max-heap by count, smallest pair first on ties: heapq is a min-heap of (-count, pair).
    # Entries go stale when a count changes; a fresh entry is pushed then, and a stale one
    # (whose count no longer matches stats) is skipped when popped ("lazy deletion").
    heap = [(-c, pair) for pair, c in stats.items()]
    heapq.heapify(heap)

    merges = []
    while len(vocab) < n_tokens and heap:
        neg_count, pair = heapq.heappop(heap)
        if stats.get(pair, 0) != -neg_count:
            continue  # stale entry
        new_bytes = vocab[pair[0]] + vocab[pair[1]]
        new_id = token_id.get(new_bytes)
        if new_id is None:
            new_id = len(vocab)
            vocab.append(new_bytes)
            token_id[new_bytes] = new_id
        # else subtle: the bytes already are a token (made by another merge): reuse its id.
        merges.append((pair[0], pair[1], new_id))

        changed = set()
        for w in where.pop(pair):
            old = words[w]
            new = merge(old, pair, new_id)
            if len(new) == len(old):
                continue  # the word lost this pair in an earlier merge (the index keeps stale words)
            delta = get_stats(old, weight=-counts[w])
            get_stats(new, delta, counts[w])
            for p, d in delta.items():
                if d:
                    stats[p] = stats.get(p, 0) + d
                    changed.add(p)
            for p in zip(new, new[1:]):
                where.setdefault(p, set()).add(w)
            words[w] = new
        for p in changed:
            if stats[p] > 0:
                heapq.heappush(heap, (-stats[p], p))
            else:
                del stats[p]  # the merged pair itself always ends here: no occurrence is left
    return merges, vocab
