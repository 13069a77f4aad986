"""Pre-tokenizer patterns: how text is cut into chunks before BPE sees it.

Byte-level BPE never merges across a chunk boundary, so the split pattern
decides which tokens can exist at all: with GPT-2's pattern " the" can be one
token but "the." never can, and a run of digits is cut apart from the letters
around it. The patterns are the ones OpenAI's tokenizers use, copied verbatim
from tiktoken (``tiktoken_ext/openai_public.py``) so that our encoder agrees
with tiktoken to the last id:

    "gpt2"   r50k_base / GPT-2 (Radford et al. 2019): contractions, ' ?letters',
             ' ?digits', ' ?other', whitespace runs that leave their last space to
             the next word.
    "gpt4"   cl100k_base / GPT-3.5 and GPT-4: case-insensitive contractions, a
             letter run may take one leading non-letter, digits in groups of at
             most 3, newlines kept together.
    "o200k"  o200k_base / GPT-4o: like gpt4, but a word splits at a lower-to-upper
             case change ("camelCase" -> "camel", "Case").

Worked example (gpt2)::

    regex.findall(GPT2_PATTERN, "Hello world's  123!!")
    -> ['Hello', ' world', "'s", ' ', ' 123', '!!']

A pattern read from a file is code: a regex such as ``(a|aa)+$`` takes time
exponential in the length of the text it fails on (catastrophic backtracking),
so a shared tokenizer file could hang every process that encodes with it.
Loading therefore accepts only the patterns above, WHOLE_TEXT_PATTERN and None
(KNOWN_PATTERNS: all that tinyllm writes for them); any other needs the explicit
``trust_pattern=True`` (check_loaded_pattern).

The patterns need the third-party ``regex`` module (``\\p{L}``, possessive
quantifiers); Python's ``re`` cannot compile them.
"""

from __future__ import annotations

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

GPT4_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "o200k": O200K_PATTERN}

# A pattern that matches a whole text: what tiktoken needs for "no pre-split" (pattern None).
WHOLE_TEXT_PATTERN = r"[\s\S]+"

# The patterns a tokenizer file may hold without trust_pattern=True (None: no pre-split).
KNOWN_PATTERNS = frozenset([*PATTERNS.values(), WHOLE_TEXT_PATTERN])


class UntrustedPatternError(ValueError):
    """A tokenizer file holds a regex tinyllm does not know; it runs only with trust_pattern=True."""


def check_loaded_pattern(pattern: str | None, source: str, trust_pattern: bool = False) -> str | None:
    """`pattern` as read from the file `source`, if it is None or one of KNOWN_PATTERNS, or trust_pattern is True.

    check_loaded_pattern(GPT2_PATTERN, "t.json") -> GPT2_PATTERN;
    check_loaded_pattern("(a|aa)+$", "t.json") -> UntrustedPatternError (with trust_pattern=True: the regex)
    """
    if pattern is None or pattern in KNOWN_PATTERNS or trust_pattern:
        return pattern
    shown = pattern if len(pattern) <= 120 else pattern[:120] + "..."
    raise UntrustedPatternError(
        f"{source}: its pre-tokenizer pattern {shown!r} is not one tinyllm knows ({', '.join(PATTERNS)}, whole "
        "text, or none). A regex from a file runs on every text you encode, and a hostile one can take "
        "exponential time (e.g. '(a|aa)+$'), so it is refused. If you wrote this tokenizer or trust whoever did, "
        "load it with trust_pattern=True (load_tokenizer(path, trust_pattern=True), or --trust-pattern on the "
        "tinyllm command); that runs the regex as given.")


def resolve_pattern(pattern: str | None) -> str | None:
    """A pattern name ("gpt2", "gpt4", "o200k"), a custom regex, or None (no split) -> the regex or None.

    resolve_pattern("gpt2") -> GPT2_PATTERN;  resolve_pattern(r"\\w+|\\W") -> r"\\w+|\\W";
    resolve_pattern(None) -> None
    A custom regex is compiled once here so that a typo fails now, with the regex module's message.
    """
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a name in {sorted(PATTERNS)}, a regex string or None, "
                        f"got {type(pattern).__name__}")
    if pattern in PATTERNS:
        return PATTERNS[pattern]
    import regex

    try:
        regex.compile(pattern)
    except regex.error as e:
        raise ValueError(f"pattern {pattern!r} is neither a known name {sorted(PATTERNS)} "
                         f"nor a valid regex: {e}") from None
    if pattern == "":
        raise ValueError("an empty pattern matches nothing; use pattern=None for no pre-split")
    return pattern


def pattern_name(pattern: str | None) -> str | None:
    """The short name of a known pattern ("gpt2", ...), or None for a custom regex or no split."""
    for name, regex_str in PATTERNS.items():
        if pattern == regex_str:
            return name
    return None
