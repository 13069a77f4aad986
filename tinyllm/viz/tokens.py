"""`tinyllm tokenize`: a text cut into tokens, in the terminal and as an HTML page (§1).

    tinyllm tokenize "Hello wörld 😀" --no-color          # GPT-2's ranks from $TINYLLM_DATA_DIR/gpt2.tiktoken
    tinyllm tokenize - --vocab out/run < notes.txt        # a run folder's tokenizer, text from standard input
    tinyllm tokenize "a <b>" --gpt2-ranks gpt2.tiktoken --html tokens.html

This file chooses the tokenizer from the command line and prints; the view itself
(spans, labels of partial UTF-8, HTML, figures) is tinyllm/tokenizer/visualize.py.
Colors follow no-color.org: only on a terminal, never with --no-color or NO_COLOR.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tinyllm.tokenizer import BPETokenizer, Tokenizer, load_tokenizer
from tinyllm.tokenizer.visualize import visualize


def _gpt2_default_path() -> Path | None:
    data_dir = os.environ.get("TINYLLM_DATA_DIR")
    if data_dir and (Path(data_dir) / "gpt2.tiktoken").is_file():
        return Path(data_dir) / "gpt2.tiktoken"
    return None


def load_cli_tokenizer(vocab=None, gpt2_ranks=None) -> Tokenizer:
    """The tokenizer `tinyllm tokenize` uses: --vocab (a tinyllm tokenizer file or run folder),
    --gpt2-ranks (GPT-2's rank file), or with neither, GPT-2's ranks from $TINYLLM_DATA_DIR/gpt2.tiktoken."""
    if vocab is not None:
        path = Path(vocab)
        if not path.exists():
            raise FileNotFoundError(f"--vocab {vocab}: no such file or folder; pass a tokenizer.tiktoken or "
                                    f"tokenizer.json written by tinyllm, or a run folder holding one")
        return load_tokenizer(path)
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


def tokenize_command(args) -> int:
    """`tinyllm tokenize TEXT [--vocab FILE | --gpt2-ranks FILE] [--html FILE] [--no-color]`: 0, or 2 on an error."""
    try:
        tok = load_cli_tokenizer(getattr(args, "vocab", None), getattr(args, "gpt2_ranks", None))
        view = visualize(tok, _read_text(args.text))
    except (OSError, ValueError) as e:  # RankFileError and UnicodeDecodeError are ValueErrors
        print(f"tinyllm tokenize: {e}", file=sys.stderr)
        return 2
    print(view.to_terminal(color=use_color(getattr(args, "no_color", False))))
    if getattr(args, "html", None):
        try:
            path = view.to_html(args.html)
        except OSError as e:
            print(f"tinyllm tokenize: cannot write {args.html}: {e}", file=sys.stderr)
            return 2
        print(f"wrote {path}")
    return 0
