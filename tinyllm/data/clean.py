"""Cleaning a corpus: normalize each document's characters, then keep it only if it passes every rule.

Text from the wild carries invisible debris (zero-width spaces, byte-order marks,
control codes), several encodings of one character ("ﬁ" and "fi", "Ａ" and "A"),
ragged whitespace, and documents that are not prose at all. A model spends
capacity on all of it. Cleaning is two stages, each step a small function:

    normalize (in this order)
      newlines     "\\r\\n", "\\r", U+0085, U+2028, U+2029 -> "\\n"
      nfkc         Unicode NFKC: compatibility forms folded ("ﬁ" -> "fi", "Ａ" -> "A", NBSP -> " ")
      invisible    removed: control characters (Cc) but "\\n" and "\\t"; format characters (Cf: zero-width
                   space, BOM, soft hyphen, bidi marks) but ZWJ and ZWNJ, which emoji and several scripts
                   need; private-use (Co) and lone surrogates (Cs)
      whitespace   tabs and other spaces -> " ", runs of spaces -> one, lines stripped, no more than
                   one blank line in a row, the document stripped

    filter: a document is removed by the first rule it breaks (quality.Rule), in this order
      min_chars, max_chars    length bounds on the normalized text
      script                  the share of its letters in the allowed scripts (default: Latin) >= 0.9,
                              a character-set / language-family filter (Unicode script property)
      quality.GOPHER_RULES    Gopher's quality and repetition heuristics (Rae et al. 2021)

The report says how many documents each step changed and each rule removed, with
the first few removed by each rule, so a threshold can be judged on real examples.

    >>> normalize("ﬁne\\u200b  text\\r\\n\\r\\n\\r\\nnext\\t line ")
    'fine text\\n\\nnext line'
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field

import regex

from tinyllm.data.documents import DocumentWriter, read_documents
from tinyllm.data.quality import GOPHER_RULES, Doc, Rule, with_thresholds

_NEWLINES = regex.compile(r"\r\n|[\r\u0085\u2028\u2029]")
_INVISIBLE = regex.compile(r"[[\p{Cc}\p{Cf}\p{Co}\p{Cs}]--[\n\t\u200c\u200d]]", flags=regex.V1)
_SPACES = regex.compile(r"[^\S\n]+")        # any whitespace but a newline
_BLANK_LINES = regex.compile(r"\n{3,}")


def normalize_newlines(text: str) -> str:
    return _NEWLINES.sub("\n", text)


def nfkc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def remove_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def normalize_whitespace(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


STEPS = (("newlines", normalize_newlines), ("nfkc", nfkc), ("invisible", remove_invisible),
         ("whitespace", normalize_whitespace))


def normalize(text: str) -> str:
    """Every normalization step, in order (module docstring)."""
    for _, step in STEPS:
        text = step(text)
    return text


def script_share(scripts=("Latin",)):
    """A measure: the share of a document's letters written in `scripts` (1.0 when it has no letter)."""
    inside = regex.compile("[" + "".join(rf"\p{{Script={s}}}" for s in scripts) + "]")
    letters = regex.compile(r"\p{L}")

    def share(doc: Doc) -> float:
        n = len(letters.findall(doc.text))
        return 1.0 if n == 0 else len(inside.findall(doc.text)) / n

    return share


def _length(doc: Doc) -> float:
    return len(doc.text)


def default_rules(min_chars: int = 1, max_chars: int = 1_000_000, scripts=("Latin",), min_script: float = 0.9,
                  gopher: bool = True, thresholds: dict | None = None) -> tuple[Rule, ...]:
    """The rules `clean` applies: length bounds, the script filter (scripts=None: off), Gopher's rules.

    thresholds: {rule name: value} to move any bound, e.g. {"min_words": 20, "dup_lines": 0.5}.
    """
    for name in scripts or ():
        try:
            regex.compile(rf"\p{{Script={name}}}")
        except regex.error:
            raise ValueError(f"unknown Unicode script {name!r}; write names such as Latin, Greek, Cyrillic, "
                             f"Han, Arabic") from None
    rules = [Rule("min_chars", _length, "min", min_chars, "characters"),
             Rule("max_chars", _length, "max", max_chars, "characters")]
    if scripts:
        rules.append(Rule("script", script_share(tuple(scripts)), "min", min_script,
                          f"share of letters in {'/'.join(scripts)}"))
    if gopher:
        rules.extend(GOPHER_RULES)
    return with_thresholds(tuple(rules), thresholds or {})


@dataclass
class CleanReport:
    """What cleaning did: documents in and out, documents each step changed, and per rule the documents removed."""

    documents: int = 0
    kept: int = 0
    changed: dict = field(default_factory=lambda: {name: 0 for name, _ in STEPS})
    removed: dict = field(default_factory=dict)    # rule name -> count
    examples: dict = field(default_factory=dict)   # rule name -> [(value, text)], the first few
    rules: tuple = ()
    seconds: float = 0.0
    n_examples: int = 3

    def add(self, text: str, rules) -> str | None:
        """Normalize one document and run the rules: its clean text, or None when a rule removes it."""
        self.documents += 1
        for name, step in STEPS:
            new = step(text)
            if new != text:
                self.changed[name] += 1
            text = new
        doc = Doc(text)
        for rule in rules:
            value = rule.measure(doc)
            if not rule.passes(value):
                self.removed[rule.name] = self.removed.get(rule.name, 0) + 1
                shown = self.examples.setdefault(rule.name, [])
                if len(shown) < self.n_examples:
                    shown.append((value, text))
                return None
        self.kept += 1
        return text

    def summary(self) -> str:
        lines = [f"{self.documents:,} documents -> {self.kept:,} kept ({self.documents - self.kept:,} removed) "
                 f"in {self.seconds:.1f} s",
                 "  normalized: " + ", ".join(f"{name} changed {n:,}" for name, n in self.changed.items())]
        for rule in self.rules:
            if rule.name in self.removed:
                lines.append(f"  {self.removed[rule.name]:>8,} removed by {rule.describe()}")
                for value, text in self.examples[rule.name]:
                    short = " ".join(text.split())
                    short = short if len(short) <= 80 else short[:77] + "..."
                    lines.append(f"             {value:.3g}: {short!r}")
        return "\n".join(lines)


def clean(texts, rules=None) -> tuple[list[str], CleanReport]:
    """(the normalized documents that pass every rule, in order; the report). rules: default_rules()."""
    rules = default_rules() if rules is None else tuple(rules)
    report = CleanReport(rules=rules)
    t0 = time.perf_counter()
    kept = [t for t in (report.add(text, rules) for text in texts) if t is not None]
    report.seconds = time.perf_counter() - t0
    return kept, report


def clean_file(src, dst, *, fmt: str | None = None, field: str = "text", rules=None) -> CleanReport:
    """Clean a corpus file into another, one document at a time (documents.py formats); returns the report.

    A JSONL record keeps its other fields; its text field holds the normalized text.
    """
    rules = default_rules() if rules is None else tuple(rules)
    report = CleanReport(rules=rules)
    t0 = time.perf_counter()
    with DocumentWriter(dst, fmt, field) as out:
        for record in read_documents(src, fmt, field):
            text = report.add(record[field], rules)
            if text is not None:
                out.write({**record, field: text})
    report.seconds = time.perf_counter() - t0
    return report
