"""`tinyllm tokenize`: a text cut into tokens, in the terminal and as an HTML page (§1).

    tinyllm tokenize "Hello wörld 😀" --no-color          # GPT-2's ranks from $TINYLLM_DATA_DIR/gpt2.tiktoken
    tinyllm tokenize - --vocab out/run < notes.txt        # a run folder's tokenizer, text from standard input
    tinyllm tokenize "a <b>" --gpt2-ranks gpt2.tiktoken --html tokens.html

A long text is cut before its view is built: the terminal and the page show at most
``max_tokens`` tokens (MAX_TOKENS = 2000 by default; 0 shows all) from token ``start_token``
(0 by default), and their summary line says how many were left out and how to see others.
(A 10 MB text would otherwise make a ~1 GB page.) tokenize_command reads both from its
``args`` (``--max-tokens N``, ``--start-token S``) and falls back to the defaults.

This file chooses the tokenizer from the command line and prints; the view itself
(spans, labels of partial UTF-8, HTML, figures) is tinyllm/tokenizer/visualize.py.
Colors follow no-color.org: only on a terminal, never with --no-color or NO_COLOR.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tinyllm.tokenizer import BPETokenizer, Tokenizer, load_tokenizer
from tinyllm.tokenizer.visualize import TokenView, visualize_ids

MAX_TOKENS = 2000  # the tokens shown by default; a token is ~250 bytes of HTML


def _gpt2_default_path() -> Path | None:
    data_dir = os.environ.get("TINYLLM_DATA_DIR")
    if data_dir and (Path(data_dir) / "gpt2.tiktoken").is_file():
        return Path(data_dir) / "gpt2.tiktoken"
    return None


def load_cli_tokenizer(vocab=None, gpt2_ranks=None, trust_pattern: bool = False) -> Tokenizer:
    """The tokenizer `tinyllm tokenize` uses: --vocab (a tinyllm tokenizer file or run folder),
    --gpt2-ranks (GPT-2's rank file), or with neither, GPT-2's ranks from $TINYLLM_DATA_DIR/gpt2.tiktoken."""
    if vocab is not None:
        path = Path(vocab)
        if not path.exists():
            raise FileNotFoundError(f"--vocab {vocab}: no such file or folder; pass a tokenizer.tiktoken or "
                                    f"tokenizer.json written by tinyllm, or a run folder holding one")
        return load_tokenizer(path, trust_pattern=trust_pattern)
    if gpt2_ranks is None:
        gpt2_ranks = _gpt2_default_path()
        if gpt2_ranks is None:
            raise FileNotFoundError("no tokenizer given: pass --vocab FILE (a tinyllm tokenizer.tiktoken or "
                                    "tokenizer.json, or a run folder) or --gpt2-ranks FILE (GPT-2's gpt2.tiktoken), "
                                    "or set TINYLLM_DATA_DIR to a folder holding gpt2.tiktoken")
    if not Path(gpt2_ranks).is_file():
        raise FileNotFoundError(f"--gpt2-ranks {gpt2_ranks}: no such file; pass GPT-2's rank file gpt2.tiktoken")
    return BPETokenizer.gpt2(gpt2_ranks)


def _read_text(arg: str) -> str:
    if arg != "-":
        return arg
    buf = getattr(sys.stdin, "buffer", None)
    if buf is None:
        return sys.stdin.read()
    data = buf.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"standard input is not UTF-8: byte 0x{data[e.start]:02X} at offset {e.start} "
                         f"({e.reason}); convert it first, e.g. with iconv -t UTF-8") from None


def use_color(no_color: bool = False, stream=None) -> bool:
    """Colors only on a terminal, and not with --no-color or the NO_COLOR environment variable (no-color.org)."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not no_color and "NO_COLOR" not in os.environ and bool(isatty and isatty())


class _CutView(TokenView):
    """A TokenView of part of a text: its summary says which part (the terminal and the page both print it)."""

    def __init__(self, view: TokenView, note: str):
        super().__init__(view.tokens, name=view.name, vocab_size=view.vocab_size)
        self.note = note

    def summary(self) -> str:
        return f"{super().summary()}; {self.note}"


def _count(n: int, what: str = "token") -> str:
    return f"{n:,} {what}{'s' * (n != 1)}"


FLAGS = "--start-token S and --max-tokens N, 0 = all"


def cut_view(tok, ids, max_tokens: int = MAX_TOKENS, start_token: int = 0, how: str = FLAGS) -> TokenView:
    """The view of ids[start_token : start_token + max_tokens] (max_tokens = 0: to the end); when tokens
    are left out, its summary names them and the flags that show others:
    cut_view(tok, range(5000), 2000) -> '2,000 tokens, ...; shown: tokens 0..1,999 of 5,000 (3,000 left out; ...)'."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise ValueError(f"--max-tokens must be an integer >= 0 (0 shows every token), got {max_tokens!r}")
    if isinstance(start_token, bool) or not isinstance(start_token, int) or start_token < 0:
        raise ValueError(f"--start-token must be an integer >= 0, got {start_token!r}")
    total = len(ids)
    if start_token and start_token >= total:
        raise ValueError(f"--start-token {start_token} is past the end: the text has {_count(total)}")
    stop = total if max_tokens == 0 else min(total, start_token + max_tokens)
    view = visualize_ids(tok, ids[start_token:stop])
    if start_token == 0 and stop == total:
        return view
    left = total - (stop - start_token)
    return _CutView(view, f"shown: tokens {start_token:,}..{stop - 1:,} of {total:,} ({_count(left)} left out; "
                          f"choose others with {how})")


def tokenize_command(args) -> int:
    """`tinyllm tokenize TEXT [--vocab FILE | --gpt2-ranks FILE] [--html FILE] [--no-color]
    [--max-tokens N] [--start-token S]`: 0, or 2 on an error (one line on stderr)."""
    def fail(message) -> int:
        print(f"tinyllm tokenize: {' '.join(str(message).split())}", file=sys.stderr)  # one line
        return 2

    vocab = getattr(args, "vocab", None)
    try:
        tok = load_cli_tokenizer(vocab, getattr(args, "gpt2_ranks", None), getattr(args, "trust_pattern", False))
    except KeyError as e:  # a tokenizer file missing a field
        return fail(f"cannot read the tokenizer {vocab}: field {e} is missing; write it again with tinyllm")
    except (OSError, ValueError) as e:  # RankFileError is a ValueError
        return fail(e)
    try:
        ids = tok.encode(_read_text(args.text), allowed_special="all")
        view = cut_view(tok, ids, getattr(args, "max_tokens", MAX_TOKENS), getattr(args, "start_token", 0))
    except (KeyError, ValueError) as e:  # an unknown character; UnicodeDecodeError is a ValueError
        return fail(e.args[0] if isinstance(e, KeyError) and e.args else e)
    except OSError as e:
        return fail(e)
    print(view.to_terminal(color=use_color(getattr(args, "no_color", False))))
    if getattr(args, "html", None):
        try:
            path = view.to_html(args.html)
        except OSError as e:
            return fail(f"cannot write {args.html}: {e}")
        print(f"wrote {path}")
    return 0
