"""Quality rules for documents: Gopher's heuristics (Rae et al. 2021, appendix A.1), each a measure and a threshold.

A pretraining corpus scraped from the web is mostly not prose: menus, lists of
links, tables of numbers, text repeated down the page. DeepMind's Gopher paper
kept a document only if it passed a set of cheap rules, each one a statistic
and a bound. Here every rule is a ``Rule``: a small function of the document,
a direction ("min" or "max") and a threshold, so a report can say which rule
removed what, and a user can move any bound (``with_thresholds``).

    words   the document split on whitespace, punctuation stripped from each end; empty ones dropped
    chars   the characters of the words (the sum of their lengths)

    rule               keeps a document when                        Gopher's threshold
    min_words          number of words             >=               50
    max_words          number of words             <=               100,000
    min_mean_word      mean word length            >=               3
    max_mean_word      mean word length            <=               10
    symbol_ratio       (#, "...", "…") per word     <=               0.1
    bullet_lines       lines starting with a bullet <=              0.9 of the lines
    ellipsis_lines     lines ending in "..." / "…"  <=              0.3 of the lines
    alpha_words        words with a letter          >=              0.8 of the words
    stop_words         of "the be to of and that have with"  >=     2 (an English-language check)
    dup_lines          lines that repeat an earlier line         <= 0.30 of the lines
    dup_line_chars     characters in such lines                  <= 0.20 of the characters
    dup_paragraphs     paragraphs (blank-line separated) repeated <= 0.30 of the paragraphs
    dup_paragraph_chars  characters in them                      <= 0.20 of the characters
    top_2gram .. top_4gram     chars of the most frequent word n-gram x its count   <= 0.20, 0.18, 0.16
    dup_5gram .. dup_10gram    chars of words covered by n-grams seen twice or more <= 0.15 .. 0.10

Lines are the non-blank lines. The top n-gram rules count only an n-gram that
occurs at least twice. Worked example, "a b c a b c" (6 one-letter words):
the 3-gram "a b c" occurs twice, so dup_ngram_chars(doc, 3) = 6/6 = 1.0; the
top 2-gram ("a b", twice) gives top_ngram_chars(doc, 2) = 2·2 / 6 = 0.67.

The n-gram statistics hash each word once and handle the n-grams as uint64
arrays (a polynomial of the word ids), so a document costs a few NumPy calls
per rule rather than a Python loop per n-gram.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

STOP_WORDS = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))
BULLETS = ("•", "●", "○", "▪", "◦", "‣", "-", "*", "·")
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…—–"
_ALPHA = re.compile(r"[^\W\d_]")
_MULT = np.uint64(0x9E3779B97F4A7C15)


class Doc:
    """A document and the pieces the rules measure, each computed once."""

    def __init__(self, text: str):
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return [w for w in (t.strip(_PUNCT) for t in self.text.split()) if w]

    @cached_property
    def word_lengths(self) -> np.ndarray:
        return np.array([len(w) for w in self.words], dtype=np.int64)

    @cached_property
    def n_chars(self) -> int:
        return int(self.word_lengths.sum())

    @cached_property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.split("\n") if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in re.split(r"\n\s*\n", self.text) if p.strip()]

    @cached_property
    def word_ids(self) -> np.ndarray:
        ids: dict[str, int] = {}
        return np.array([ids.setdefault(w.lower(), len(ids) + 1) for w in self.words], dtype=np.uint64)

    def ngram_keys(self, n: int) -> np.ndarray:
        """uint64 (len(words) - n + 1,): one key per word n-gram (a polynomial in the word ids)."""
        ids = self.word_ids
        m = len(ids) - n + 1
        if m <= 0:
            return np.zeros(0, dtype=np.uint64)
        key = np.zeros(m, dtype=np.uint64)
        for j in range(n):
            key = key * _MULT + ids[j:j + m]
        return key


# ----------------------------------------------------------------------------- the measures


def word_count(doc: Doc) -> float:
    return len(doc.words)


def mean_word_length(doc: Doc) -> float:
    return float(doc.word_lengths.mean()) if doc.words else 0.0


def symbol_ratio(doc: Doc) -> float:
    n = doc.text.count("#") + doc.text.count("...") + doc.text.count("…")
    return n / max(1, len(doc.words))


def bullet_lines(doc: Doc) -> float:
    return sum(line.startswith(BULLETS) for line in doc.lines) / max(1, len(doc.lines))


def ellipsis_lines(doc: Doc) -> float:
    return sum(line.endswith(("...", "…")) for line in doc.lines) / max(1, len(doc.lines))


def alpha_words(doc: Doc) -> float:
    return sum(bool(_ALPHA.search(w)) for w in doc.words) / max(1, len(doc.words))


def stop_words(doc: Doc) -> float:
    return sum(w.lower() in STOP_WORDS for w in doc.words)


def _repeats(items: list[str]) -> tuple[int, int]:
    """(how many items repeat an earlier one, their characters)."""
    seen: set[str] = set()
    n = chars = 0
    for item in items:
        if item in seen:
            n, chars = n + 1, chars + len(item)
        seen.add(item)
    return n, chars


def dup_lines(doc: Doc) -> float:
    return _repeats(doc.lines)[0] / max(1, len(doc.lines))


def dup_line_chars(doc: Doc) -> float:
    return _repeats(doc.lines)[1] / max(1, sum(map(len, doc.lines)))


def dup_paragraphs(doc: Doc) -> float:
    return _repeats(doc.paragraphs)[0] / max(1, len(doc.paragraphs))


def dup_paragraph_chars(doc: Doc) -> float:
    return _repeats(doc.paragraphs)[1] / max(1, sum(map(len, doc.paragraphs)))


def top_ngram_chars(doc: Doc, n: int) -> float:
    """Characters of the most frequent word n-gram, times its count, over all word characters (0 if none repeats)."""
    keys = doc.ngram_keys(n)
    if len(keys) < 2:
        return 0.0
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < 2:
        return 0.0
    start = first[top]
    return float(doc.word_lengths[start:start + n].sum() * counts[top]) / max(1, doc.n_chars)


def dup_ngram_chars(doc: Doc, n: int) -> float:
    """Characters of the words covered by word n-grams that occur twice or more, over all word characters."""
    keys = doc.ngram_keys(n)
    if len(keys) < 2:
        return 0.0
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    starts = np.flatnonzero(counts[inverse.reshape(-1)] >= 2)  # positions of repeated n-grams
    cover = np.zeros(len(doc.words) + 1, dtype=np.int64)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + n, -1)
    covered = np.cumsum(cover)[:-1] > 0  # (n_words,) words inside some repeated n-gram
    return float(doc.word_lengths[covered].sum()) / max(1, doc.n_chars)


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """Keep a document when measure(doc) >= threshold (kind "min") or <= threshold (kind "max")."""

    name: str
    measure: Callable[[Doc], float]
    kind: str  # "min" or "max"
    threshold: float
    what: str = ""

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.kind == "min" else value <= self.threshold

    def describe(self) -> str:
        return f"{self.name} {'>=' if self.kind == 'min' else '<='} {self.threshold:g}" + \
            (f" ({self.what})" if self.what else "")


def _ngram_rule(name, fn, n, threshold, what):
    return Rule(name, lambda doc: fn(doc, n), "max", threshold, what)


GOPHER_RULES = (
    Rule("min_words", word_count, "min", 50, "words"),
    Rule("max_words", word_count, "max", 100_000, "words"),
    Rule("min_mean_word", mean_word_length, "min", 3, "mean word length"),
    Rule("max_mean_word", mean_word_length, "max", 10, "mean word length"),
    Rule("symbol_ratio", symbol_ratio, "max", 0.1, "'#' and ellipses per word"),
    Rule("bullet_lines", bullet_lines, "max", 0.9, "share of lines starting with a bullet"),
    Rule("ellipsis_lines", ellipsis_lines, "max", 0.3, "share of lines ending in an ellipsis"),
    Rule("alpha_words", alpha_words, "min", 0.8, "share of words with a letter"),
    Rule("stop_words", stop_words, "min", 2, "English stop words"),
    Rule("dup_lines", dup_lines, "max", 0.30, "share of repeated lines"),
    Rule("dup_line_chars", dup_line_chars, "max", 0.20, "characters in repeated lines"),
    Rule("dup_paragraphs", dup_paragraphs, "max", 0.30, "share of repeated paragraphs"),
    Rule("dup_paragraph_chars", dup_paragraph_chars, "max", 0.20, "characters in repeated paragraphs"),
    *(_ngram_rule(f"top_{n}gram", top_ngram_chars, n, t, f"characters of the top word {n}-gram")
      for n, t in ((2, 0.20), (3, 0.18), (4, 0.16))),
    *(_ngram_rule(f"dup_{n}gram", dup_ngram_chars, n, t, f"characters in repeated word {n}-grams")
      for n, t in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))),
)


def with_thresholds(rules, thresholds: dict) -> tuple[Rule, ...]:
    """The rules with some thresholds replaced: with_thresholds(GOPHER_RULES, {"min_words": 20})."""
    names = [r.name for r in rules]
    unknown = sorted(set(thresholds) - set(names))
    if unknown:
        raise ValueError(f"unknown rule {', '.join(unknown)}; the rules are: {', '.join(names)}")
    return tuple(dataclasses.replace(r, threshold=float(thresholds[r.name])) if r.name in thresholds else r
                 for r in rules)


def first_failure(rules, text: str) -> tuple[Rule, float] | None:
    """(the first rule the document breaks, its measured value), or None when it passes them all."""
    doc = Doc(text)
    for rule in rules:
        value = rule.measure(doc)
        if not rule.passes(value):
            return rule, value
    return None
